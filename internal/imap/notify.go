// This file holds NOTIFY (RFC 5465): the client says which events of which
// mailboxes it wants, and the server sends them as they happen, also while
// no command runs (not only in IDLE). Events of the selected mailbox are
// the usual EXISTS/FETCH/EXPUNGE (VANISHED with QRESYNC), with MessageNew's
// FETCH items; events of other mailboxes are STATUS responses (new or
// expunged messages, flag changes) and LIST responses (MailboxName:
// creation, deletion as \NonExistent, renaming with OLDNAME).
//
// Loft's reading of the RFC where it leaves room: without a "selected"
// group (or with "selected-delayed"), the selected mailbox's changes are
// announced as in base IMAP, at the end of commands; SubscriptionChange
// sends a LIST with or without \Subscribed for each SUBSCRIBE and
// UNSUBSCRIBE of a matching name.

package imap

import (
	"context"
	"errors"
	"net"
	"strings"

	"loft/internal/store"
)

// Mailbox specifiers of an event group (RFC 5465 §6).
const (
	notifySelected        = "SELECTED"
	notifySelectedDelayed = "SELECTED-DELAYED"
	notifyInboxes         = "INBOXES"
	notifyPersonal        = "PERSONAL"
	notifySubscribed      = "SUBSCRIBED"
	notifySubtree         = "SUBTREE"
	notifyMailboxes       = "MAILBOXES"
)

// notifyGroup is one event group: which mailboxes, which events.
type notifyGroup struct {
	spec      string
	mailboxes []string        // for SUBTREE and MAILBOXES
	events    map[string]bool // upper-case event names; empty: NONE
}

// notifySpec is the NOTIFY SET in force (NOTIFY NONE: no groups).
type notifySpec struct {
	groups   []notifyGroup
	selected *notifyGroup // the "selected" group, if any (not -delayed)
	newFetch []fetchItem  // MessageNew's FETCH items for the selected mailbox
}

// supportedEvents are the events Loft can send (RFC 5465 §5), listed in
// the BADEVENT response code.
var supportedEvents = []string{"MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"}

// async reports whether the session sends events while waiting for a
// command.
func (n *notifySpec) async() bool { return n != nil && len(n.groups) > 0 }

func (n *notifySpec) wantsNewFetch() bool { return n != nil && len(n.newFetch) > 0 }

// pushSelected reports whether changes of the selected mailbox are sent
// as they happen.
func (n *notifySpec) pushSelected() bool {
	return n != nil && n.selected != nil && len(n.selected.events) > 0
}

func (s *session) cmdNotify(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	if p.takeWord("NONE") {
		if err := p.end(); err != nil {
			return err
		}
		s.notify = nil
		return nil
	}
	if !p.takeWord("SET") {
		return p.unexpected("SET or NONE")
	}
	if err := p.sp(); err != nil {
		return err
	}
	status := false
	if p.takeWord("STATUS") {
		status = true
		if err := p.sp(); err != nil {
			return err
		}
	}
	n := &notifySpec{}
	for {
		g, err := s.notifyGroupArg(n)
		if err != nil {
			return err
		}
		n.groups = append(n.groups, g)
		if !p.take(' ') {
			break
		}
	}
	if err := p.end(); err != nil {
		return err
	}
	for i := range n.groups {
		if n.groups[i].spec == notifySelected {
			n.selected = &n.groups[i]
		}
	}
	s.notify = n
	if status {
		// RFC 5465 §3.1: STATUS of every mailbox that MessageNew is
		// wanted for, now, as a starting point.
		mbs, err := s.srv.st.Mailboxes(context.Background(), s.account.ID)
		if err != nil {
			return err
		}
		for _, mb := range mbs {
			if (s.sel == nil || mb.ID != s.sel.id) && s.notifyMatch(mb.Name, "MESSAGENEW") {
				if err := s.writeNotifyStatus(mb); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// notifyGroupArg reads "(" filter-mailboxes SP events ")".
func (s *session) notifyGroupArg(n *notifySpec) (notifyGroup, error) {
	p := s.p
	var g notifyGroup
	if err := p.expect('('); err != nil {
		return g, err
	}
	spec, err := p.atom()
	if err != nil {
		return g, err
	}
	g.spec = strings.ToUpper(spec)
	switch g.spec {
	case notifySelected, notifySelectedDelayed, notifyInboxes, notifyPersonal, notifySubscribed:
	case notifySubtree, notifyMailboxes:
		if err := p.sp(); err != nil {
			return g, err
		}
		if p.take('(') {
			for first := true; !p.take(')'); first = false {
				if !first {
					if err := p.sp(); err != nil {
						return g, err
					}
				}
				name, err := s.mailboxArg()
				if err != nil {
					return g, err
				}
				g.mailboxes = append(g.mailboxes, name)
			}
		} else {
			name, err := s.mailboxArg()
			if err != nil {
				return g, err
			}
			g.mailboxes = append(g.mailboxes, name)
		}
		if len(g.mailboxes) == 0 {
			return g, bad("", "%s needs a mailbox", spec)
		}
	default:
		return g, bad("", "Unknown mailbox specifier %s", clip([]byte(spec)))
	}
	if err := p.sp(); err != nil {
		return g, err
	}
	g.events = map[string]bool{}
	if !p.takeWord("NONE") {
		if err := p.expect('('); err != nil {
			return g, err
		}
		for first := true; !p.take(')'); first = false {
			if !first {
				if err := p.sp(); err != nil {
					return g, err
				}
			}
			ev, err := p.atom()
			if err != nil {
				return g, err
			}
			ev = strings.ToUpper(ev)
			switch ev {
			case "MESSAGENEW":
				if p.peek() == ' ' && len(p.line) > p.pos+1 && p.line[p.pos+1] == '(' {
					p.take(' ')
					items, err := s.fetchItems()
					if err != nil {
						return g, err
					}
					for _, it := range items {
						if it.needsBody() && !it.peek && it.kind != fetchBinarySize {
							return g, bad("", "MessageNew takes no FETCH item that sets \\Seen")
						}
					}
					if g.spec == notifySelected || g.spec == notifySelectedDelayed {
						n.newFetch = items
					}
				}
			case "MESSAGEEXPUNGE", "FLAGCHANGE", "MAILBOXNAME", "SUBSCRIPTIONCHANGE":
			default:
				// RFC 5465 §5: NO with the events the server does support.
				return g, no("BADEVENT ("+strings.Join(supportedEvents, " ")+")", "Unsupported event %s", clip([]byte(ev)))
			}
			g.events[ev] = true
		}
	}
	if err := p.expect(')'); err != nil {
		return g, err
	}
	// RFC 5465 §5.1-5.2 and §8: the message events come as a pair, FlagChange
	// with them; the selected mailbox has message events only, and once.
	if g.events["MESSAGENEW"] != g.events["MESSAGEEXPUNGE"] {
		return g, bad("", "MessageNew and MessageExpunge go together")
	}
	if g.events["FLAGCHANGE"] && !g.events["MESSAGENEW"] {
		return g, bad("", "FlagChange needs MessageNew and MessageExpunge")
	}
	if g.spec == notifySelected || g.spec == notifySelectedDelayed {
		if g.events["MAILBOXNAME"] || g.events["SUBSCRIPTIONCHANGE"] {
			return g, bad("", "The selected mailbox takes message events only")
		}
		for _, other := range n.groups {
			if other.spec == notifySelected || other.spec == notifySelectedDelayed {
				return g, bad("", "Only one selected mailbox group")
			}
		}
	}
	return g, nil
}

// notifyMatch reports whether event (upper-case) is wanted for the
// mailbox name, which is not the selected mailbox: the first group whose
// specifier matches the mailbox decides (RFC 5465 §6).
func (s *session) notifyMatch(name, event string) bool {
	if s.notify == nil {
		return false
	}
	for _, g := range s.notify.groups {
		match := false
		switch g.spec {
		case notifySelected, notifySelectedDelayed:
			continue
		case notifyPersonal:
			match = true
		case notifyInboxes:
			// Loft delivers to INBOX only.
			match = name == "INBOX"
		case notifySubscribed:
			mb, err := s.srv.st.Mailbox(context.Background(), s.account.ID, name)
			match = err == nil && mb.Subscribed
		case notifySubtree:
			for _, m := range g.mailboxes {
				match = match || name == m || strings.HasPrefix(name, m+store.Separator)
			}
		case notifyMailboxes:
			for _, m := range g.mailboxes {
				match = match || name == m
			}
		}
		if match {
			return g.events[event]
		}
	}
	return false
}

// notifyOther sends what NOTIFY asks for about a change that is not a
// message change of the selected mailbox.
func (s *session) notifyOther(c *store.Change) {
	if !s.notify.async() {
		return
	}
	ctx := context.Background()
	switch c.Kind {
	case store.ChangeNew, store.ChangeExpunge, store.ChangeFlags:
		if s.notifyDone[c.MailboxID] {
			return // one STATUS per mailbox per burst: it has the latest counts
		}
		mb, err := s.srv.st.MailboxByID(ctx, s.account.ID, c.MailboxID)
		if err != nil {
			return // deleted meanwhile: MailboxName tells
		}
		event := "MESSAGENEW"
		if c.Kind == store.ChangeFlags {
			event = "FLAGCHANGE"
		}
		if !s.notifyMatch(mb.Name, event) {
			return
		}
		if s.notifyDone == nil {
			s.notifyDone = map[int64]bool{}
		}
		s.notifyDone[c.MailboxID] = true
		if err := s.writeNotifyStatus(mb); err != nil {
			s.log.Debug("notify status", "err", err)
		}
	case store.ChangeMailboxCreate, store.ChangeMailboxDelete, store.ChangeMailboxRename:
		names := []string{c.Name, c.OldName}
		if !s.notifyMatch(names[0], "MAILBOXNAME") && (c.OldName == "" || !s.notifyMatch(c.OldName, "MAILBOXNAME")) {
			return
		}
		// RFC 5465 §5.4: LIST, \NonExistent for a deletion, OLDNAME
		// (RFC 5258 extended data) for a renaming.
		attrs := "()"
		if c.Kind == store.ChangeMailboxDelete {
			attrs = `(\NonExistent)`
		}
		s.w.WriteString("* LIST " + attrs + ` "/" `)
		s.w.mailbox(c.Name)
		if c.Kind == store.ChangeMailboxRename {
			s.w.WriteString(` ("OLDNAME" (`)
			s.w.mailbox(c.OldName)
			s.w.WriteString("))")
		}
		s.w.WriteString("\r\n")
	case store.ChangeSubscription:
		// RFC 5465 §5.5: a LIST with \Subscribed, or without it.
		if !s.notifyMatch(c.Name, "SUBSCRIPTIONCHANGE") {
			return
		}
		attrs := "()"
		if c.Subscribed {
			attrs = `(\Subscribed)`
		}
		s.w.WriteString("* LIST " + attrs + ` "/" `)
		s.w.mailbox(c.Name)
		s.w.WriteString("\r\n")
	}
}

// writeNotifyStatus writes the STATUS of a mailbox that NOTIFY sends for
// message events (RFC 5465 §5.1-5.3), with HIGHESTMODSEQ under CONDSTORE.
func (s *session) writeNotifyStatus(mb *store.Mailbox) error {
	items := []string{"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"}
	if s.condstore {
		items = append(items, "HIGHESTMODSEQ")
	}
	return s.writeStatus(mb, items)
}

// notifyFetchNew sends MessageNew's FETCH items for a new message of the
// selected mailbox (after its EXISTS).
func (s *session) notifyFetchNew(uid uint32) {
	seq := s.sel.seqOf(uid)
	infos, err := s.messages([]int{seq})
	if err != nil || infos[0] == nil {
		return // expunged meanwhile: the expunge follows
	}
	if err := s.fetchMessage(seq, infos[0], s.notify.newFetch, false); err != nil && !errors.Is(err, store.ErrNoMessage) {
		s.log.Debug("notify fetch", "err", err)
	}
}

// readCommandLine reads the next command line. With NOTIFY in force it
// sends events meanwhile, as IDLE does (RFC 5465 §3): those of other
// mailboxes, and the selected mailbox's with a "selected" group.
func (s *session) readCommandLine() error {
	if !s.notify.async() {
		return s.readLine()
	}
	done := make(chan error, 1)
	go func() { done <- s.readLine() }()
	for {
		select {
		case <-s.sub.Ready():
			s.announceOutside()
			if err := s.flush(); err != nil {
				s.conn.Close()
				<-done
				return err
			}
			if s.state == stateLogout {
				s.conn.Close()
				<-done
				return net.ErrClosed
			}
		case err := <-done:
			return err
		}
	}
}

// announceOutside announces changes while no command runs: all of them
// if the selected mailbox's changes are pushed, else those of other
// mailboxes only (the selected one's wait for the next command).
func (s *session) announceOutside() {
	if s.sel == nil || s.notify.pushSelected() {
		s.announce(true)
		return
	}
	s.absorb()
	var keep []store.Change
	for i := range s.pending {
		c := &s.pending[i]
		if c.MailboxID == s.sel.id {
			keep = append(keep, *c)
			continue
		}
		if c.Kind == store.ChangeAccountDelete {
			s.bye("Account deleted")
			return
		}
		s.notifyOther(c)
	}
	s.notifyDone = nil
	s.pending = keep
}
