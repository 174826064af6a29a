// Sizes as people write them in config files and on the command line
// ("200MB", "1.5GiB", "unlimited") and as Loft prints them back.

package config

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Unlimited is the size that means "no limit" (for example a quota). It is
// what ParseSize returns for "unlimited".
const Unlimited int64 = -1

// sizeUnits maps a lower-cased unit to its multiplier. K, M, G and T are
// decimal (SI, as disk vendors and most mail providers count): "200MB" is
// 200,000,000 bytes. The binary units are spelled with an "i": "1GiB" is
// 1,073,741,824 bytes.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1000,
	"kb":  1000,
	"kib": 1 << 10,
	"m":   1000 * 1000,
	"mb":  1000 * 1000,
	"mib": 1 << 20,
	"g":   1000 * 1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"gib": 1 << 30,
	"t":   1000 * 1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"tib": 1 << 40,
}

// ParseSize parses a size in bytes: a non-negative number, optionally with a
// fraction, optionally followed (with or without a space) by a unit, or the
// word "unlimited", which yields Unlimited. Units are case-insensitive:
// B; K or KB, M or MB, G or GB, T or TB (decimal: "200MB" is 200,000,000
// bytes); KiB, MiB, GiB, TiB (binary: "1MiB" is 1,048,576 bytes). A bare
// number is bytes. A fraction of a byte is rounded down ("1.5GiB" is
// exact; "0.0001KB" is 0). Negative sizes, unknown units and sizes beyond
// int64 are errors naming the input.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "unlimited") {
		return Unlimited, nil
	}
	// Split into the number (digits with at most one '.') and the unit.
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" || num[0] == '.' || num[len(num)-1] == '.' || strings.Count(num, ".") > 1 {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("size %q is negative", s)
		}
		return 0, fmt.Errorf("size %q is not a number with an optional unit, like \"200MB\", \"1.5GiB\" or \"unlimited\"", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q has unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, strings.TrimSpace(t[i:]))
	}
	// Exact rational arithmetic: float64 would turn "1.1GB" into
	// 1100000000.0000002 and large byte counts into approximations.
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("size %q is not a number", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	n := new(big.Int).Quo(r.Num(), r.Denom()) // rounds toward zero; r >= 0
	if !n.IsInt64() {
		return 0, fmt.Errorf("size %q is too large (at most %d bytes)", s, int64(math.MaxInt64))
	}
	return n.Int64(), nil
}

// FormatSize renders a byte count for people, in decimal units with at most
// one decimal: "0 B", "999 B", "1.5 MB", "200 MB", "unlimited" for
// Unlimited. It is the inverse of ParseSize up to that rounding.
func FormatSize(n int64) string {
	if n == Unlimited {
		return "unlimited"
	}
	sign := ""
	u := uint64(n)
	if n < 0 { // not a size Loft produces, but print it honestly
		sign, u = "-", uint64(-(n+1))+1
	}
	if u < 1000 {
		return fmt.Sprintf("%s%d B", sign, u)
	}
	units := []string{"KB", "MB", "GB", "TB", "PB", "EB"}
	div := uint64(1000)
	for i, name := range units {
		// Tenths of the unit, rounded half up; move to the next unit when
		// rounding reaches 1000 ("999.95 KB" prints as "1 MB").
		// Split so that u*10 cannot overflow.
		tenths := (u/div)*10 + (u%div*10+div/2)/div
		if tenths < 10000 || i == len(units)-1 {
			if tenths%10 == 0 {
				return fmt.Sprintf("%s%d %s", sign, tenths/10, name)
			}
			return fmt.Sprintf("%s%d.%d %s", sign, tenths/10, tenths%10, name)
		}
		div *= 1000
	}
	panic("unreachable")
}
