// Package glob matches names against the simple patterns riposte uses for
// rule names and journal entry types: * is any run of characters (dots and
// slashes included) and ? is one character (a whole UTF-8 rune); every
// other character stands for itself. Pure functions, safe for concurrent
// use.
package glob

import (
	"strings"
	"unicode/utf8"
)

// Match reports whether s matches pattern.
func Match(pattern, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					_, size := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += size
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if starPx >= 0 && starSx < len(s) {
			// Let the last star swallow one more character (a whole rune).
			_, size := utf8.DecodeRuneInString(s[starSx:])
			starSx += size
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
	return true
}

// Has reports whether pattern has any glob character (else it matches
// only itself).
func Has(pattern string) bool { return strings.ContainsAny(pattern, "*?") }
