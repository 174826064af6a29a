// This file holds the mailbox commands: LIST (with LIST-EXTENDED, RFC
// 5258; LIST-STATUS, RFC 5819; SPECIAL-USE, RFC 6154; CHILDREN, RFC 3348),
// LSUB (IMAP4rev1), STATUS (with SIZE, RFC 8438), CREATE (with USE, RFC
// 6154 §3), DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE.

package imap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"loft/internal/store"
)

// listOptions are a LIST command's selection and return options.
type listOptions struct {
	subscribedOnly bool // selection SUBSCRIBED
	specialUseOnly bool // selection SPECIAL-USE
	recursiveMatch bool
	retSubscribed  bool
	retStatus      []string // RETURN (STATUS (...))
	lsub           bool
}

func (s *session) cmdList(c *cmd) error {
	p := s.p
	var o listOptions
	if err := p.sp(); err != nil {
		return err
	}
	if p.take('(') {
		for first := true; !p.take(')'); first = false {
			if !first {
				if err := p.sp(); err != nil {
					return err
				}
			}
			opt, err := p.atom()
			if err != nil {
				return err
			}
			switch strings.ToUpper(opt) {
			case "SUBSCRIBED":
				o.subscribedOnly, o.retSubscribed = true, true
			case "SPECIAL-USE":
				o.specialUseOnly = true
			case "RECURSIVEMATCH":
				o.recursiveMatch = true
			case "REMOTE":
			default:
				return bad("", "Unknown LIST selection option %s", opt)
			}
		}
		if o.recursiveMatch && !o.subscribedOnly {
			return bad("", "RECURSIVEMATCH needs another selection option") // RFC 5258 §3
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	ref, err := p.astring()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	var patterns []string
	if p.take('(') {
		for !p.take(')') {
			if len(patterns) > 0 {
				if err := p.sp(); err != nil {
					return err
				}
			}
			pat, err := p.listMailbox()
			if err != nil {
				return err
			}
			patterns = append(patterns, pat)
		}
	} else {
		pat, err := p.listMailbox()
		if err != nil {
			return err
		}
		patterns = append(patterns, pat)
	}
	if p.take(' ') {
		if !p.takeWord("RETURN") {
			return p.unexpected("RETURN")
		}
		if err := p.sp(); err != nil {
			return err
		}
		if err := p.expect('('); err != nil {
			return err
		}
		for first := true; !p.take(')'); first = false {
			if !first {
				if err := p.sp(); err != nil {
					return err
				}
			}
			opt, err := p.atom()
			if err != nil {
				return err
			}
			switch strings.ToUpper(opt) {
			case "SUBSCRIBED":
				o.retSubscribed = true
			case "CHILDREN", "SPECIAL-USE":
				// Always returned.
			case "STATUS":
				if err := p.sp(); err != nil {
					return err
				}
				if o.retStatus, err = s.statusItems(); err != nil {
					return err
				}
			default:
				return bad("", "Unknown LIST return option %s", opt)
			}
		}
	}
	if err := p.end(); err != nil {
		return err
	}
	return s.list(ref, patterns, o)
}

func (s *session) cmdLsub(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	ref, err := p.astring()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	pat, err := p.listMailbox()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	return s.list(ref, []string{pat}, listOptions{subscribedOnly: true, lsub: true})
}

// list answers LIST and LSUB.
func (s *session) list(ref string, patterns []string, o listOptions) error {
	w := s.w
	resp := "LIST"
	if o.lsub {
		resp = "LSUB"
	}
	if len(patterns) == 1 && patterns[0] == "" {
		// RFC 9051 §6.3.9: an empty pattern asks for the delimiter.
		fmt.Fprintf(w, "* %s (\\Noselect) \"/\" \"\"\r\n", resp)
		return nil
	}
	ref, err := s.decodeName(ref)
	if err != nil {
		return err
	}
	var pats []string
	for _, pat := range patterns {
		full := pat
		if ref != "" {
			full = ref + pat
		}
		if !s.rev2 && !s.utf8Accept {
			if full, err = decodeMUTF7(full); err != nil {
				return bad("", "%v", err)
			}
		}
		pats = append(pats, full)
	}
	mbs, err := s.srv.st.Mailboxes(context.Background(), s.account.ID)
	if err != nil {
		return err
	}
	byName := make(map[string]*store.Mailbox, len(mbs))
	children := make(map[string]bool)
	var names []string
	for _, mb := range mbs {
		byName[mb.Name] = mb
		names = append(names, mb.Name)
	}
	// Parents that are not mailboxes themselves exist as \Noselect
	// (\NonExistent in IMAP4rev2) names.
	for _, mb := range mbs {
		for n := mb.Name; ; {
			i := strings.LastIndex(n, store.Separator)
			if i < 0 {
				break
			}
			n = n[:i]
			children[n] = true
			if _, ok := byName[n]; !ok && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if a == "INBOX" || b == "INBOX" {
			return boolCmp(b == "INBOX", a == "INBOX")
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		mb := byName[name]
		matched, pctOnly := false, false
		for _, pat := range pats {
			if matchPattern(pat, name) {
				matched = true
				pctOnly = strings.HasSuffix(pat, "%")
				break
			}
		}
		if !matched {
			continue
		}
		if mb == nil && !pctOnly {
			continue // an implied parent shows only where "%" stops at it
		}
		if o.subscribedOnly && (mb == nil || !mb.Subscribed) {
			if mb != nil || !o.lsub {
				continue
			}
		}
		if o.specialUseOnly && (mb == nil || mb.SpecialUse == "") {
			continue
		}
		var attrs []string
		if mb == nil {
			if s.rev2 && !o.lsub {
				attrs = append(attrs, `\NonExistent`)
			} else {
				attrs = append(attrs, `\Noselect`)
			}
		}
		if !o.lsub {
			if children[name] {
				attrs = append(attrs, `\HasChildren`)
			} else {
				attrs = append(attrs, `\HasNoChildren`)
			}
			if mb != nil && o.retSubscribed && mb.Subscribed {
				attrs = append(attrs, `\Subscribed`)
			}
			if mb != nil && mb.SpecialUse != "" {
				attrs = append(attrs, mb.SpecialUse)
			}
		}
		fmt.Fprintf(w, "* %s (%s) \"/\" ", resp, strings.Join(attrs, " "))
		w.mailbox(name)
		w.WriteString("\r\n")
		if mb != nil && len(o.retStatus) > 0 {
			if err := s.writeStatus(mb, o.retStatus); err != nil {
				return err
			}
		}
	}
	return nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// matchPattern matches a LIST pattern: "*" matches anything, "%" anything
// but the separator (RFC 9051 §6.3.9). INBOX matches case-insensitively.
func matchPattern(pat, name string) bool {
	if name == "INBOX" || strings.HasPrefix(name, "INBOX/") {
		if len(pat) >= 5 && strings.EqualFold(pat[:5], "INBOX") {
			pat = "INBOX" + pat[5:]
		}
	}
	return match(pat, name, 0)
}

func match(pat, name string, depth int) bool {
	if depth > 20 {
		return false // bounds the backtracking of hostile patterns
	}
	for len(pat) > 0 {
		switch pat[0] {
		case '*', '%':
			rest := pat[1:]
			for i := 0; i <= len(name); i++ {
				if match(rest, name[i:], depth+1) {
					return true
				}
				if i < len(name) && pat[0] == '%' && name[i] == '/' {
					return false
				}
			}
			return false
		default:
			if len(name) == 0 || name[0] != pat[0] {
				return false
			}
			pat, name = pat[1:], name[1:]
		}
	}
	return name == ""
}

// statusItems reads a parenthesized list of STATUS items.
func (s *session) statusItems() ([]string, error) {
	p := s.p
	if err := p.expect('('); err != nil {
		return nil, err
	}
	var items []string
	for !p.take(')') {
		if len(items) > 0 {
			if err := p.sp(); err != nil {
				return nil, err
			}
		}
		a, err := p.atom()
		if err != nil {
			return nil, err
		}
		a = strings.ToUpper(a)
		switch a {
		case "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT":
		case "HIGHESTMODSEQ": // RFC 7162 §3.1.6, a CONDSTORE enabling item
			s.enableCondstore()
		default:
			return nil, bad("", "Unknown STATUS item %s", a)
		}
		items = append(items, a)
	}
	if len(items) == 0 {
		return nil, bad("", "No STATUS items")
	}
	return items, nil
}

func (s *session) cmdStatus(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	name, err := s.mailboxArg()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	items, err := s.statusItems()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	mb, err := s.srv.st.Mailbox(context.Background(), s.account.ID, name)
	if err != nil {
		return storeError(err)
	}
	return s.writeStatus(mb, items)
}

func (s *session) writeStatus(mb *store.Mailbox, items []string) error {
	var recent int64
	if slices.Contains(items, "RECENT") {
		// Those no session has claimed yet, and this session's own.
		var err error
		if recent, err = s.srv.st.CountRecent(context.Background(), s.account.ID, mb.ID); err != nil {
			return err
		}
		if s.sel != nil && s.sel.id == mb.ID {
			recent += int64(s.sel.recentCount())
		}
	}
	w := s.w
	w.WriteString("* STATUS ")
	w.mailbox(mb.Name)
	w.WriteString(" (")
	for i, it := range items {
		if i > 0 {
			w.WriteByte(' ')
		}
		w.WriteString(it + " ")
		switch it {
		case "MESSAGES":
			w.num(mb.Messages)
		case "UIDNEXT":
			w.num(int64(mb.UIDNext))
		case "UIDVALIDITY":
			w.num(int64(mb.UIDValidity))
		case "UNSEEN":
			w.num(mb.Unseen)
		case "DELETED":
			w.num(mb.Deleted)
		case "SIZE":
			w.num(mb.Size)
		case "RECENT":
			w.num(recent)
		case "HIGHESTMODSEQ":
			w.num(mb.HighestModSeq)
		}
	}
	w.WriteString(")\r\n")
	return nil
}

// specialUses are the RFC 6154 attributes CREATE accepts: those Loft's
// store keeps as a mailbox's role (not the virtual \All and \Flagged).
var specialUses = []string{`\Archive`, `\Drafts`, `\Junk`, `\Sent`, `\Trash`}

func (s *session) cmdCreate(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	name, err := s.mailboxArg()
	if err != nil {
		return err
	}
	use := ""
	if p.take(' ') {
		// RFC 6154 §3: CREATE name (USE (\Sent))
		if err := p.expect('('); err != nil {
			return err
		}
		if !p.takeWord("USE") {
			return p.unexpected("USE")
		}
		if err := p.sp(); err != nil {
			return err
		}
		flags, err := p.flagList()
		if err != nil {
			return err
		}
		if err := p.expect(')'); err != nil {
			return err
		}
		if len(flags) > 1 {
			return no("USEATTR", "Only one special-use attribute per mailbox")
		}
		for _, f := range flags {
			i := slices.IndexFunc(specialUses, func(u string) bool { return strings.EqualFold(u, f) })
			if i < 0 {
				return no("USEATTR", "Unsupported special-use attribute %s", f)
			}
			use = specialUses[i]
		}
	}
	if err := p.end(); err != nil {
		return err
	}
	// A trailing separator declares the intent to create children
	// (RFC 9051 §6.3.4); the name itself is created without it.
	name = strings.TrimSuffix(name, store.Separator)
	if name == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	if err := validMailboxName(name); err != nil {
		return err
	}
	ctx := context.Background()
	// Superior names are created as needed (RFC 9051 §6.3.4).
	parts := strings.Split(name, store.Separator)
	for i := 1; i < len(parts); i++ {
		parent := strings.Join(parts[:i], store.Separator)
		if _, err := s.srv.st.CreateMailbox(ctx, s.account.ID, parent, ""); err != nil && !errors.Is(err, store.ErrMailboxExists) {
			return createError(err)
		}
	}
	if _, err := s.srv.st.CreateMailbox(ctx, s.account.ID, name, use); err != nil {
		return createError(err)
	}
	return nil
}

func createError(err error) error {
	return storeError(err)
}

// validMailboxName checks a name against the store's rules before it is
// created or renamed to: no empty hierarchy level, no control characters.
func validMailboxName(name string) error {
	switch {
	case name == "":
		return no("CANNOT", "Empty mailbox name")
	case strings.HasPrefix(name, store.Separator) || strings.Contains(name, store.Separator+store.Separator):
		return no("CANNOT", "Empty hierarchy level in mailbox name")
	case strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return no("CANNOT", "Control character in mailbox name")
	}
	return nil
}

func (s *session) cmdDelete(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	name, err := s.mailboxArg()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	if name == "INBOX" {
		return no("CANNOT", "INBOX cannot be deleted")
	}
	if s.sel != nil && s.sel.name == name {
		s.unselect()
	}
	return storeError(s.srv.st.DeleteMailbox(context.Background(), s.account.ID, name))
}

func (s *session) cmdRename(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	from, err := s.mailboxArg()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	to, err := s.mailboxArg()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	to = strings.TrimSuffix(to, store.Separator)
	if to == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	if err := validMailboxName(to); err != nil {
		return err
	}
	return storeError(s.srv.st.RenameMailbox(context.Background(), s.account.ID, from, to))
}

func (s *session) cmdSubscribe(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	name, err := s.mailboxArg()
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	err = s.srv.st.SetSubscribed(context.Background(), s.account.ID, name, c.name == "SUBSCRIBE")
	if c.name == "UNSUBSCRIBE" && errors.Is(err, store.ErrNoMailbox) {
		return nil
	}
	return storeError(err)
}
