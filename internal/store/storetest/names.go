// Package storetest holds test data that the store's tests and the
// protocols' tests share.
package storetest

// NameTricks are mailbox names that try to reach another account's mail
// through paths, encodings or namespaces. In Loft a name is only ever
// looked up within the logged-in account (every query is keyed by
// account_id), and bodies are files named by internal ids, so none of
// them may lead anywhere but into the caller's own mailboxes.
var NameTricks = []string{
	"../bob/INBOX",
	"../../bob@example.org/INBOX",
	"%2e%2e/bob/INBOX",
	"&AC4ALg-/bob/INBOX", // modified UTF-7 of ".."
	"~bob",
	"~bob/INBOX",
	"#shared/bob/INBOX",
	"#users/bob/INBOX",
	"Other Users/bob/INBOX",
	"/bob/INBOX",
	"/etc/passwd",
	"INBOX/../../bob/INBOX",
	"..\\bob\\INBOX",
	"bob@example.org/INBOX",
	"bob@example.org:INBOX",
	"INBOX\x00bob",
	"\xc0\xae\xc0\xae/bob/INBOX", // overlong UTF-8 of ".."
	"user.bob.INBOX",
	"*",
	"%",
}
