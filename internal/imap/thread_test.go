package imap

import (
	"fmt"
	"testing"
	"time"
)

// rfc5256Mailbox builds a mailbox in which the THREAD examples of RFC 5256
// §3 give exactly the answers shown there: messages 1-165 arrived before
// 5 March 2000, and 166-208 since, with subjects, dates and references
// chosen for those threads.
func rfc5256Mailbox(t *testing.T) *testServer {
	ts := newTestServer(t)
	ts.fill(165, sortMsg("Filler", "Mon, 1 Jan 1990 00:00:00 +0000"), oldDate)
	// Sent-date order of 166-208 (RFC 5256 §2.2), from the examples.
	order := []int{166, 167, 168, 169, 172, 170, 171, 173, 174, 175, 176, 178, 181, 180, 179,
		177, 183, 182, 188, 184, 185, 186, 187, 189}
	for n := 190; n <= 208; n++ {
		order = append(order, n)
	}
	rank := map[int]int{}
	for i, n := range order {
		rank[n] = i
	}
	subject := map[int]string{
		174: "Plans", 175: "[team] plans", 176: "PLANS", 178: "Plans", 181: "plans", 180: "Plans",
		177: "Budget", 183: "Budget", 182: "budget", 188: "Budget", 185: "Budget", 187: "Budget",
		184: "Re: Budget", 189: "RE: [x] budget", 186: "Re: Budget",
		194: "Lunch", 195: "Lunch", 196: "Dinner", 197: "Dinner", 198: "Re: Dinner",
		200: "Party", 202: "Re: Party",
		206: "Topic 206", 207: "Re: Topic 206",
	}
	refs := map[int]string{
		170: "In-Reply-To: <gone@example.org>",
		179: "References: <gone@example.org>",
		184: "In-Reply-To: <188@example.org>",
		189: "References: <188@example.org>",
		186: "In-Reply-To: <185@example.org> (Bob's message)",
		196: "In-Reply-To: <195@example.org>",
		198: "In-Reply-To: <197@example.org>",
		202: "In-Reply-To: <\"200\"@example.org>",
		206: "In-Reply-To: <205@example.org>",
		207: "References: <205@example.org>\r\n <206@example.org>",
	}
	base := time.Date(2000, 3, 6, 9, 0, 0, 0, time.UTC)
	for n := 166; n <= 208; n++ {
		subj, ok := subject[n]
		if !ok {
			subj = fmt.Sprintf("Topic %d", n)
		}
		date := base.Add(time.Duration(rank[n]) * time.Hour).Format(time.RFC1123Z)
		extra := []string{fmt.Sprintf("Message-ID: <%d@example.org>", n)}
		if r, ok := refs[n]; ok {
			extra = append(extra, r)
		}
		ts.deliverAt(sortMsg(subj, date, extra...), base.Add(24*time.Hour))
	}
	return ts
}

// TestThreadRFC5256Examples replays the THREAD examples of RFC 5256 §3.
func TestThreadRFC5256Examples(t *testing.T) {
	ts := rfc5256Mailbox(t)
	c := ts.login(false)
	selectInbox(c, 208)
	c.cmd("A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000",
		"* THREAD (166)(167)(168)(169)(172)(170)(171)"+
			"(173)(174 (175)(176)(178)(181)(180))(179)(177"+
			" (183)(182)(188)(184)(185)(186)(187)(189))(190)"+
			"(191)(192)(193)(194 195)(196 (197)(198))(199)"+
			"(200 202)(201)(203)(204)(205)(206 207)(208)",
		"A283 OK THREAD completed")
	c.cmd(`A284 THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"`, "* THREAD", "A284 OK THREAD completed")
	c.cmd("A285 THREAD REFERENCES UTF-8 SINCE 5-MAR-2000",
		"* THREAD (166)(167)(168)(169)(172)((170)(179))"+
			"(171)(173)((174)(175)(176)(178)(181)(180))"+
			"((177)(183)(182)(188 (184)(189))(185 186)(187))"+
			"(190)(191)(192)(193)((194)(195 196))(197 198)"+
			"(199)(200 202)(201)(203)(204)(205 206 207)(208)",
		"A285 OK THREAD completed")
	// UID THREAD answers with UIDs, which are the numbers here.
	c.cmd("a UID THREAD REFERENCES UTF-8 UID 205:207", "* THREAD (205 206 207)", "a OK THREAD completed")
	// Only searched messages take part: 206's parent is not searched.
	c.cmd("b THREAD REFERENCES UTF-8 206:207", "* THREAD (206 207)", "b OK THREAD completed")
	c.cmd("c THREAD REFERENCES UTF-8 184,189", "* THREAD ((184)(189))", "c OK THREAD completed")
	c.cmd("d THREAD FOO UTF-8 ALL", "d BAD Unknown threading algorithm FOO")
	c.cmd("e THREAD REFERENCES KOI8-R ALL", "e NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset")
	c.cmd("f SORT (DATE) UTF-8 170:183", "* SORT 172 170 171 173 174 175 176 178 181 180 179 177 183 182", "f OK SORT completed")
}
