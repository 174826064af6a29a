package soak

// The IMAP clients of the load (go-imap v2's imapclient). Each owns some
// copies of each account's mail and a folder: it finds its copies in the
// INBOX (FETCH of a header field), MOVEs them to its folder, APPENDs new
// ones there, STOREs flags, EXPUNGEs, and FETCHes them back to check them
// against the oracle while the load runs. One more session per account sits
// in IDLE and counts what the server pushes.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// IMAP sessions end and start again every so often, as clients do.
const (
	imapOpsPerSession = 200
	folderLimit       = 40 // above it, a client expunges rather than adds
)

// flagChoices are the flags a client STOREs and APPENDs with.
var flagChoices = []string{`\Seen`, `\Flagged`, `\Answered`, `$Soak`}

// imapClient is one IMAP client of one account.
type imapClient struct {
	l       *load
	account string
	n       int
	rng     *rand.Rand

	// What it knows of its own copies, which no one else touches:
	inbox    map[uint32]int // INBOX UID -> message id, of the messages seen there
	lastUID  uint32         // the highest INBOX UID scanned
	folder   map[int]uint32 // message id -> UID in its folder
	selected string
}

func (w *imapClient) role() string { return imapRole(w.n) }

func (w *imapClient) who() string { return fmt.Sprintf("imap %s %s", w.account, w.role()) }

// errLost marks an operation that got no reply.
var errLost = errors.New("no reply")

// classify turns a command's error into: nil, a refusal (NO/BAD: an error
// of the server, recorded here), or a lost reply (errLost wrapping it).
func (w *imapClient) classify(what string, err error) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		w.l.fail("%s: %s: %v", w.who(), what, err)
		return err
	}
	return fmt.Errorf("%s: %w (%v)", what, errLost, err)
}

func (w *imapClient) loop() {
	w.l.reconnect("imap", func(addr string) {
		c, done, err := dialIMAP(w.l, addr, w.account, nil)
		if err != nil {
			w.l.broken(w.who()+" login", err)
			return
		}
		defer done()
		w.l.count("imap-sessions", 1)
		w.selected = ""
		for range imapOpsPerSession {
			if err := w.step(c); err != nil {
				if errors.Is(err, errLost) {
					w.l.broken(w.who(), err)
				}
				return // after a refusal too: start afresh
			}
			if !w.l.pause(opPause) {
				break
			}
		}
		if err := c.Logout().Wait(); err != nil {
			w.l.broken(w.who()+" logout", err)
		}
	})
}

// dialIMAP connects and logs in; done logs nothing out, it only closes.
func dialIMAP(l *load, addr, account string, opts *imapclient.Options) (*imapclient.Client, func(), error) {
	conn, done, err := l.dial(addr)
	if err != nil {
		return nil, nil, err
	}
	c := imapclient.New(conn, opts)
	if err := c.Login(account, password).Wait(); err != nil {
		c.Close()
		done()
		return nil, nil, err
	}
	return c, func() { c.Close(); done() }, nil
}

// step does one operation, drawn at random.
func (w *imapClient) step(c *imapclient.Client) error {
	switch k := w.rng.IntN(10); {
	case k < 3:
		return w.moveFromInbox(c)
	case k < 5 && len(w.folder) < folderLimit:
		return w.append(c)
	case k < 7 && len(w.folder) < folderLimit:
		return w.store(c)
	case k < 8 || len(w.folder) >= folderLimit:
		return w.expunge(c)
	default:
		return w.fetch(c)
	}
}

func (w *imapClient) selectMailbox(c *imapclient.Client, name string) error {
	if w.selected == name {
		return nil
	}
	w.selected = ""
	_, err := c.Select(name, nil).Wait()
	if err := w.classify("SELECT "+name, err); err != nil {
		return err
	}
	w.selected = name
	return nil
}

// moveFromInbox learns the ids of the INBOX's new messages, then MOVEs one
// of its own copies, if it has one the oracle is certain of, to its folder.
func (w *imapClient) moveFromInbox(c *imapclient.Client) error {
	if err := w.selectMailbox(c, "INBOX"); err != nil {
		return err
	}
	msgs, err := c.Fetch(imap.UIDSet{{Start: imap.UID(w.lastUID + 1), Stop: 0}}, &imap.FetchOptions{
		UID: true,
		BodySection: []*imap.FetchItemBodySection{{
			Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"X-Soak-Id"}, Peek: true}},
	}).Collect()
	if err := w.classify("FETCH new INBOX messages", err); err != nil {
		return err
	}
	w.l.count("imap-scan", 1)
	for _, m := range msgs {
		uid := uint32(m.UID)
		// "n:*" names the last message even below n; and a FETCH of
		// flags alone is a change pushed by the server (POP3 marking
		// \Seen), not an answer.
		if uid <= w.lastUID || len(m.BodySection) == 0 {
			continue
		}
		w.lastUID = uid
		header := m.BodySection[0].Bytes
		id := w.l.o.idOf(header)
		if w.l.o.role(copyKey{w.account, id}) == "" {
			w.l.fail("%s: INBOX UID %d is no message of this load: %q", w.who(), uid, header)
			continue
		}
		if w.l.o.role(copyKey{w.account, id}) == w.role() {
			w.inbox[uid] = id
		}
	}
	// Its own copy with the lowest UID that the oracle is certain of.
	uids := make([]uint32, 0, len(w.inbox))
	for uid := range w.inbox {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	for _, uid := range uids {
		k := copyKey{w.account, w.inbox[uid]}
		_, p, ok := w.l.o.certain(k)
		if !ok {
			continue // not yet acknowledged, or frozen
		}
		if p.mailbox != "INBOX" {
			w.l.fail("%s: message %d, INBOX UID %d, is at %v by the oracle", w.who(), k.id, uid, p)
			delete(w.inbox, uid)
			continue
		}
		to := place{mailbox: folderOf(w.n), flags: p.flags}
		md, err := c.Move(imap.UIDSetNum(imap.UID(uid)), to.mailbox).Wait()
		if err := w.classify(fmt.Sprintf("UID MOVE %d", uid), err); err != nil {
			if errors.Is(err, errLost) {
				w.l.o.lost(k, to)
				delete(w.inbox, uid)
			}
			return err
		}
		delete(w.inbox, uid)
		w.l.o.ack(k, to)
		w.l.count("imap-move", 1)
		dst, _ := md.DestUIDs.(imap.UIDSet)
		if nums, _ := dst.Nums(); len(nums) == 1 {
			w.folder[k.id] = uint32(nums[0])
		} else {
			w.l.fail("%s: UID MOVE %d: COPYUID with destination %v, want one UID", w.who(), uid, md.DestUIDs)
		}
		return nil
	}
	return nil
}

// pick returns one of its folder's copies the oracle is certain of.
func (w *imapClient) pick() (k copyKey, uid uint32, p place, ok bool) {
	ids := make([]int, 0, len(w.folder))
	for id := range w.folder {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	w.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		k := copyKey{w.account, id}
		if _, p, ok := w.l.o.certain(k); ok {
			return k, w.folder[id], p, true
		}
		delete(w.folder, id) // frozen: forget it
	}
	return copyKey{}, 0, gone, false
}

func (w *imapClient) randomFlags() []imap.Flag {
	var fs []imap.Flag
	for _, f := range flagChoices {
		if w.rng.IntN(2) == 0 {
			fs = append(fs, imap.Flag(f))
		}
	}
	return fs
}

// append APPENDs a new message with random flags to its folder.
func (w *imapClient) append(c *imapclient.Client) error {
	flags := w.randomFlags()
	to := place{mailbox: folderOf(w.n), flags: flagString(flags)}
	id, body := w.l.o.newAppend(w.account, w.role(), to)
	k := copyKey{w.account, id}
	cmd := c.Append(to.mailbox, int64(len(body)), &imap.AppendOptions{Flags: flags})
	_, werr := cmd.Write(body)
	cerr := cmd.Close()
	ad, err := cmd.Wait()
	if err == nil {
		err = errors.Join(werr, cerr)
	}
	if err := w.classify("APPEND", err); err != nil {
		if errors.Is(err, errLost) {
			w.l.o.lost(k, to)
		} else {
			w.l.o.ack(k, gone)
		}
		return err
	}
	w.l.o.ack(k, to)
	w.l.count("imap-append", 1)
	if ad.UID == 0 {
		w.l.fail("%s: APPEND: no APPENDUID", w.who())
		return nil
	}
	w.folder[id] = uint32(ad.UID)
	return nil
}

// store replaces the flags of one of its copies (FLAGS.SILENT).
func (w *imapClient) store(c *imapclient.Client) error {
	k, uid, p, ok := w.pick()
	if !ok {
		return nil
	}
	if err := w.selectMailbox(c, p.mailbox); err != nil {
		return err
	}
	flags := w.randomFlags()
	to := place{mailbox: p.mailbox, flags: flagString(flags)}
	err := c.Store(imap.UIDSetNum(imap.UID(uid)), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: flags}, nil).Close()
	if err := w.classify(fmt.Sprintf("UID STORE %d FLAGS", uid), err); err != nil {
		if errors.Is(err, errLost) {
			w.l.o.lost(k, to)
		}
		return err
	}
	w.l.o.ack(k, to)
	w.l.count("imap-store", 1)
	return nil
}

// expunge marks one of its copies \Deleted and expunges it alone (UID
// EXPUNGE, RFC 4315): two operations, each acknowledged on its own.
func (w *imapClient) expunge(c *imapclient.Client) error {
	k, uid, p, ok := w.pick()
	if !ok {
		return nil
	}
	if err := w.selectMailbox(c, p.mailbox); err != nil {
		return err
	}
	set := imap.UIDSetNum(imap.UID(uid))
	deleted := place{mailbox: p.mailbox, flags: addFlag(p.flags, `\Deleted`)}
	err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	if err := w.classify(fmt.Sprintf("UID STORE %d +FLAGS (\\Deleted)", uid), err); err != nil {
		if errors.Is(err, errLost) {
			w.l.o.lost(k, deleted)
		}
		return err
	}
	w.l.o.ack(k, deleted)
	if err := w.classify(fmt.Sprintf("UID EXPUNGE %d", uid), c.UIDExpunge(set).Close()); err != nil {
		if errors.Is(err, errLost) {
			w.l.o.lost(k, gone)
		}
		return err
	}
	w.l.o.ack(k, gone)
	delete(w.folder, k.id)
	w.l.count("imap-expunge", 1)
	return nil
}

// fetch reads one of its copies back, flags and body, and holds them
// against the oracle.
func (w *imapClient) fetch(c *imapclient.Client) error {
	k, uid, p, ok := w.pick()
	if !ok {
		return nil
	}
	if err := w.selectMailbox(c, p.mailbox); err != nil {
		return err
	}
	msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{
		UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err := w.classify(fmt.Sprintf("UID FETCH %d", uid), err); err != nil {
		return err
	}
	w.l.count("imap-fetch", 1)
	if len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
		w.l.fail("%s: UID FETCH %d in %s: %d messages, want message %d", w.who(), uid, p.mailbox, len(msgs), k.id)
		delete(w.folder, k.id)
		return nil
	}
	m := msgs[0]
	if got := flagString(m.Flags); got != p.flags {
		w.l.fail("%s: message %d (UID %d in %s): flags (%s), want (%s)", w.who(), k.id, uid, p.mailbox, got, p.flags)
	}
	body := m.BodySection[0].Bytes
	if id := w.l.o.idOf(body); id != k.id {
		w.l.fail("%s: UID %d in %s is message %d, want %d", w.who(), uid, p.mailbox, id, k.id)
	} else if ok, err := w.l.o.sumOK(id, body); !ok {
		w.l.fail("%s: message %d (UID %d in %s) differs from what was sent (%v)", w.who(), id, uid, p.mailbox, err)
	}
	return nil
}

// idleLoop keeps a session per account in IDLE on the INBOX and counts
// the untagged responses the server pushes (EXISTS, EXPUNGE, FETCH).
func (l *load) idleLoop(account string) {
	var pushes atomic.Int64
	h := &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { pushes.Add(1) },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				pushes.Add(1)
			}
		},
		Fetch: func(m *imapclient.FetchMessageData) {
			m.Collect()
			pushes.Add(1)
		},
	}
	who := "idle " + account
	l.reconnect("imap", func(addr string) {
		c, done, err := dialIMAP(l, addr, account, &imapclient.Options{UnilateralDataHandler: h})
		if err != nil {
			l.broken(who+" login", err)
			return
		}
		defer done()
		before := pushes.Load()
		defer func() { l.count("idle-pushes", pushes.Load()-before) }()
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			l.broken(who+" select", err)
			return
		}
		idle, err := c.Idle()
		if err != nil {
			l.broken(who+" idle", err)
			return
		}
		l.count("idle-sessions", 1)
		// RFC 2177 §3: clients re-issue IDLE at least every 29 minutes;
		// this one ends its session every few minutes.
		select {
		case <-l.stop.Done():
		case <-c.Closed():
			l.broken(who, errors.New("connection closed in IDLE"))
			return
		case <-time.After(3 * time.Minute):
		}
		if err := idle.Close(); err != nil {
			l.broken(who+" DONE", err)
			return
		}
		if err := idle.Wait(); err != nil {
			l.broken(who+" IDLE", err)
			return
		}
		c.Logout().Wait()
	})
}
