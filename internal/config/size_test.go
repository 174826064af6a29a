package config

import (
	"math"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1048576", 1048576},
		{"200MB", 200_000_000},
		{"200 MB", 200_000_000},
		{"200mb", 200_000_000},
		{" 200 Mb ", 200_000_000},
		{"1.5GiB", 1_610_612_736},
		{"1.5 gib", 1_610_612_736},
		{"1.1GB", 1_100_000_000},
		{"512k", 512_000},
		{"512K", 512_000},
		{"512KB", 512_000},
		{"512KiB", 524_288},
		{"10B", 10},
		{"10 b", 10},
		{"3M", 3_000_000},
		{"3MiB", 3 << 20},
		{"2G", 2_000_000_000},
		{"2GiB", 2 << 30},
		{"1T", 1_000_000_000_000},
		{"1TB", 1_000_000_000_000},
		{"1TiB", 1 << 40},
		{"0.5KB", 500},
		{"1.0001KB", 1000}, // fractions of a byte round down
		{"unlimited", Unlimited},
		{"Unlimited", Unlimited},
		{"9223372036854775807", math.MaxInt64},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSizeRejects(t *testing.T) {
	for _, in := range []string{
		"", " ", "MB", "-1", "-5MB", "1.2.3MB", ".5MB", "5.MB", "1e6", "12 parsecs",
		"200 M B", "0x10", "1,000", "9223372036854775808", "10000000TB", "unlimitedMB", "+5",
	} {
		got, err := ParseSize(in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), "\""+in+"\"") {
			t.Errorf("ParseSize(%q) error %q does not name the input", in, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{Unlimited, "unlimited"},
		{0, "0 B"},
		{1, "1 B"},
		{999, "999 B"},
		{1000, "1 KB"},
		{1500, "1.5 KB"},
		{1_500_000, "1.5 MB"},
		{200_000_000, "200 MB"},
		{199_999_999, "200 MB"},
		{999_949, "999.9 KB"},
		{999_950, "1 MB"}, // rounding carries into the next unit
		{1_234_567, "1.2 MB"},
		{64_000_000, "64 MB"},
		{1 << 30, "1.1 GB"},
		{2_500_000_000_000, "2.5 TB"},
		{math.MaxInt64, "9.2 EB"},
		{-1500, "-1.5 KB"},
		{math.MinInt64, "-9.2 EB"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestFormatSizeParsesBack checks that what Loft prints can be typed back.
func TestFormatSizeParsesBack(t *testing.T) {
	for _, n := range []int64{Unlimited, 0, 999, 1000, 1500, 200_000_000, 2_500_000_000_000} {
		s := FormatSize(n)
		got, err := ParseSize(s)
		if err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
}
