// The change feed: every committed change, in commit order, to every live
// session of the account. IMAP turns changes into untagged EXISTS, FETCH,
// EXPUNGE and VANISHED responses; POP3 ignores most of them. Publishing never
// blocks the writer: each subscription queues changes until its session
// drains them, and a wake-up channel tells the session there is something.
package store

import "sync"

// ChangeKind says what a Change is about.
type ChangeKind int

// The kinds of change.
const (
	ChangeNew           ChangeKind = iota + 1 // a message was added to a mailbox (UID, ModSeq, Flags)
	ChangeFlags                               // a message's flags changed (UID, ModSeq, Flags: the full new set)
	ChangeExpunge                             // messages were expunged (UIDs, ModSeq)
	ChangeMailboxCreate                       // Name was created
	ChangeMailboxRename                       // OldName was renamed to Name
	ChangeMailboxDelete                       // Name was deleted
	ChangeAccountDelete                       // the account is gone: sessions end
	ChangeSubscription                        // Name was subscribed or unsubscribed (Subscribed)
)

// Change is one committed change of an account.
type Change struct {
	Kind      ChangeKind
	MailboxID int64
	Name      string   // mailbox name (new name for a rename)
	OldName   string   // for ChangeMailboxRename
	UID       uint32   // ChangeNew, ChangeFlags
	UIDs      []uint32 // ChangeExpunge, ascending
	ModSeq    int64    // the mailbox's modseq after the change
	Flags     []string // ChangeNew, ChangeFlags
	Size      int64    // ChangeNew: the message size, for quota and STATUS SIZE
	// Subscribed is the new state, for ChangeSubscription (whose MailboxID
	// is 0: it concerns a name, not messages).
	Subscribed bool
	accountID  int64
	blob       string // ChangeNew: the body, for the mailbox index
	date       int64  // ChangeNew: internal date, unix seconds, for the index
}

type feed struct {
	mu   sync.Mutex
	subs map[int64]map[*Subscription]struct{} // by account id
}

func newFeed() *feed {
	return &feed{subs: make(map[int64]map[*Subscription]struct{})}
}

// Subscription receives the changes of one account from the moment it was
// made. Close it when the session ends.
type Subscription struct {
	f       *feed
	account int64
	wake    chan struct{}
	mu      sync.Mutex
	pending []Change
}

// Subscribe starts receiving the changes of an account. To avoid missing a
// change between reading state and subscribing, subscribe first, then read.
func (s *Store) Subscribe(accountID int64) *Subscription {
	sub := &Subscription{f: s.feed, account: accountID, wake: make(chan struct{}, 1)}
	s.feed.mu.Lock()
	m := s.feed.subs[accountID]
	if m == nil {
		m = make(map[*Subscription]struct{})
		s.feed.subs[accountID] = m
	}
	m[sub] = struct{}{}
	s.feed.mu.Unlock()
	return sub
}

// Ready is signalled (without blocking the writer) when changes are pending.
func (sub *Subscription) Ready() <-chan struct{} { return sub.wake }

// Changes returns and clears the pending changes, oldest first.
func (sub *Subscription) Changes() []Change {
	sub.mu.Lock()
	c := sub.pending
	sub.pending = nil
	sub.mu.Unlock()
	return c
}

// Close stops the subscription.
func (sub *Subscription) Close() {
	sub.f.mu.Lock()
	if m := sub.f.subs[sub.account]; m != nil {
		delete(m, sub)
		if len(m) == 0 {
			delete(sub.f.subs, sub.account)
		}
	}
	sub.f.mu.Unlock()
}

// publish hands committed changes to the subscribers of their accounts. It
// is called by the writer alone, in commit order, so every subscriber sees
// every account's changes in the order they were made.
func (f *feed) publish(changes []Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		for sub := range f.subs[c.accountID] {
			sub.mu.Lock()
			sub.pending = append(sub.pending, c)
			sub.mu.Unlock()
			select {
			case sub.wake <- struct{}{}:
			default:
			}
		}
	}
}
