// loft reindex [ADDRESS]: rebuild the text index (search text, sort and
// thread keys, previews) of one account's bodies, or of all bodies. It
// reads every body from its file, so it also brings bodies stored before
// the index existed into it. It runs beside `loft serve`: SEARCH stays
// exact meanwhile, reading the messages the index does not cover yet.

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"
)

func cmdReindex(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	load := configFlag(fs)
	// The address is optional.
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		var err0 error
		if pos, err0 = parseFlags(fs, args, 0); err0 != nil {
			return err
		}
	}
	address := ""
	if len(pos) == 1 {
		address = pos[0]
	}
	_, st, err := openConfigured(load)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	res, err := st.Reindex(context.Background(), address)
	if err != nil {
		return err
	}
	what := "all accounts"
	if address != "" {
		what = address
	}
	fmt.Fprintf(stdout, "reindexed %d bodies of %s in %.1fs", res.Bodies, what, time.Since(start).Seconds())
	if res.Dropped > 0 {
		fmt.Fprintf(stdout, "; dropped the rows of %d bodies gone", res.Dropped)
	}
	fmt.Fprintln(stdout)
	return nil
}
