// This file holds THREAD and UID THREAD (RFC 5256 §3) with the
// ORDEREDSUBJECT and REFERENCES algorithms, step by step as the RFC gives
// them, over the searched messages and the keys SORT uses (sort.go).

package imap

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"loft/internal/store"
)

// threadAlgorithms are the algorithms THREAD accepts, as advertised.
var threadAlgorithms = []string{"ORDEREDSUBJECT", "REFERENCES"}

// threadNode is a message of a thread tree, or a dummy standing for a
// message that is referenced but was not searched.
type threadNode struct {
	msg      *sorted // nil: a dummy
	parent   *threadNode
	children []*threadNode
}

func (s *session) cmdThread(c *cmd) error {
	p := s.p
	if err := p.sp(); err != nil {
		return err
	}
	alg, err := p.atom()
	if err != nil {
		return err
	}
	alg = strings.ToUpper(alg)
	if !slices.Contains(threadAlgorithms, alg) {
		return bad("", "Unknown threading algorithm %s", clip([]byte(alg)))
	}
	if err := p.sp(); err != nil {
		return err
	}
	root, err := s.searchCriteria()
	if err != nil {
		return err
	}
	msgs, _, _, err := s.sortData(root, store.SortAll)
	if err != nil {
		return err
	}
	var threads []*threadNode
	if alg == "REFERENCES" {
		threads = threadReferences(msgs)
	} else {
		threads = threadOrderedSubject(msgs)
	}
	var b strings.Builder
	b.WriteString("* THREAD")
	if len(threads) > 0 {
		b.WriteByte(' ')
	}
	for _, t := range threads {
		writeThread(&b, t, c.uid)
	}
	b.WriteString("\r\n")
	s.w.WriteString(b.String())
	return nil
}

// threadOrderedSubject is ORDEREDSUBJECT: messages sorted by base subject
// and sent date, a thread per base subject whose first message is the
// parent of all the others, threads ordered by their first message.
func threadOrderedSubject(msgs []sorted) []*threadNode {
	slices.SortStableFunc(msgs, func(a, b sorted) int {
		if r := strings.Compare(a.info.Subject, b.info.Subject); r != 0 {
			return r
		}
		return compareSent(&a, &b)
	})
	var threads []*threadNode
	for i := 0; i < len(msgs); {
		t := &threadNode{msg: &msgs[i]}
		j := i + 1
		for ; j < len(msgs) && msgs[j].info.Subject == msgs[i].info.Subject; j++ {
			t.children = append(t.children, &threadNode{msg: &msgs[j], parent: t})
		}
		threads = append(threads, t)
		i = j
	}
	slices.SortStableFunc(threads, func(a, b *threadNode) int { return compareSent(a.msg, b.msg) })
	return threads
}

// compareSent orders by sent date, then by sequence number (RFC 5256 §2.2).
func compareSent(a, b *sorted) int {
	if r := cmp.Compare(a.info.Sent, b.info.Sent); r != 0 {
		return r
	}
	return cmp.Compare(a.seq, b.seq)
}

// threadReferences is the REFERENCES algorithm of RFC 5256 §3; msgs are
// in mailbox order.
func threadReferences(msgs []sorted) []*threadNode {
	// Step 1: link messages by their references.
	ids := map[string]*threadNode{}
	var nodes []*threadNode // in creation order, so that the result is deterministic
	node := func(id string) *threadNode {
		n := ids[id]
		if n == nil {
			n = &threadNode{}
			ids[id] = n
			nodes = append(nodes, n)
		}
		return n
	}
	for i := range msgs {
		m := &msgs[i]
		var cur *threadNode
		// A message without a valid id, or with the id of an earlier
		// message, gets a unique one: a node no id leads to.
		if id := m.info.MessageID; id != "" && (ids[id] == nil || ids[id].msg == nil) {
			cur = node(id)
		} else {
			cur = &threadNode{}
			nodes = append(nodes, cur)
		}
		cur.msg = m
		refs := m.info.References
		// 1.A: each reference is the parent of the next, unless the child
		// has a parent already or the link would make a loop.
		for j := 0; j+1 < len(refs); j++ {
			parent, child := node(refs[j]), node(refs[j+1])
			if child.parent == nil && !reaches(parent, child) {
				link(parent, child)
			}
		}
		// 1.B: the last reference is the parent of the message, replacing
		// any parent 1.A gave it from another message's references.
		if cur.parent != nil {
			unlink(cur)
		}
		if len(refs) > 0 {
			if parent := node(refs[len(refs)-1]); !reaches(parent, cur) {
				link(parent, cur)
			}
		}
	}
	// Step 2: the messages without a parent are the threads.
	var roots []*threadNode
	for _, n := range nodes {
		if n.parent == nil {
			roots = append(roots, n)
		}
	}
	// Step 3: prune dummies.
	roots = prune(roots, true)
	// Step 4: sort the threads by sent date.
	for _, n := range roots {
		if n.msg == nil {
			slices.SortStableFunc(n.children, compareNodes)
		}
	}
	slices.SortStableFunc(roots, compareNodes)
	// Step 5: gather threads with the same base subject.
	roots = mergeSubjects(roots)
	// Step 6: sort every set of siblings, the deepest first.
	sortThreads(roots)
	return roots
}

// reaches reports whether linking parent above child would make a loop:
// child is parent or one of its ancestors.
func reaches(parent, child *threadNode) bool {
	for n := parent; n != nil; n = n.parent {
		if n == child {
			return true
		}
	}
	return false
}

func link(parent, child *threadNode) {
	child.parent = parent
	parent.children = append(parent.children, child)
}

func unlink(child *threadNode) {
	p := child.parent
	p.children = slices.DeleteFunc(p.children, func(n *threadNode) bool { return n == child })
	child.parent = nil
}

// prune is step 3: a dummy without children goes; a dummy with children
// gives way to them, except that at the top a dummy stays if it has more
// than one.
func prune(list []*threadNode, top bool) []*threadNode {
	var out []*threadNode
	for _, n := range list {
		n.children = prune(n.children, false)
		if n.msg == nil && (!top || len(n.children) <= 1) {
			for _, c := range n.children {
				c.parent = n.parent
			}
			out = append(out, n.children...)
			continue
		}
		out = append(out, n)
	}
	return out
}

// first is the message a node sorts as: itself, or a dummy's first child.
func (n *threadNode) first() *sorted {
	for n.msg == nil && len(n.children) > 0 {
		n = n.children[0]
	}
	return n.msg
}

func compareNodes(a, b *threadNode) int {
	return compareSent(a.first(), b.first())
}

// subject is a thread's subject (step 5.B.i).
func (n *threadNode) subject() string {
	if m := n.first(); m != nil {
		return m.info.Subject
	}
	return ""
}

// mergeSubjects is step 5: threads whose base subjects are equal join.
func mergeSubjects(roots []*threadNode) []*threadNode {
	// 5.B: one thread per subject, preferring a dummy, then a message
	// that is not a reply.
	table := map[string]*threadNode{}
	for _, n := range roots {
		subj := n.subject()
		if subj == "" {
			continue
		}
		old := table[subj]
		if old == nil || old.msg != nil && (n.msg == nil || old.msg.info.Reply && !n.msg.info.Reply) {
			table[subj] = n
		}
	}
	// 5.C: merge the others into it.
	for i := 0; i < len(roots); {
		cur := roots[i]
		subj := cur.subject()
		old := table[subj]
		if subj == "" || old == cur {
			i++
			continue
		}
		switch {
		case old.msg == nil && cur.msg == nil:
			for _, c := range cur.children {
				link(old, c)
			}
		case old.msg == nil:
			link(old, cur)
		case cur.msg != nil && cur.msg.info.Reply && !old.msg.info.Reply:
			link(old, cur)
		default:
			d := &threadNode{}
			roots[slices.Index(roots, old)] = d
			link(d, old)
			link(d, cur)
			table[subj] = d
		}
		roots = slices.Delete(roots, i, i+1)
	}
	return roots
}

// sortThreads sorts siblings by sent date, children before parents.
func sortThreads(list []*threadNode) {
	for _, n := range list {
		sortThreads(n.children)
	}
	slices.SortStableFunc(list, compareNodes)
}

// writeThread writes a thread-list (RFC 5256 §5): a chain of single
// children as numbers, then the sub-threads where it branches.
func writeThread(b *strings.Builder, n *threadNode, uid bool) {
	b.WriteByte('(')
	sep := false
	for {
		if n.msg != nil {
			if sep {
				b.WriteByte(' ')
			}
			num := uint32(n.msg.seq)
			if uid {
				num = n.msg.uid
			}
			b.WriteString(strconv.FormatUint(uint64(num), 10))
			sep = true
		}
		if len(n.children) == 1 {
			n = n.children[0]
			continue
		}
		if len(n.children) > 1 {
			if sep {
				b.WriteByte(' ')
			}
			for _, c := range n.children {
				writeThread(b, c, uid)
			}
		}
		break
	}
	b.WriteByte(')')
}
