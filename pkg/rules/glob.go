package rules

import (
	"bytes"
	"path"
	"strings"
	"unicode/utf8"
)

// glob is a path.Match pattern split once into its star-separated chunks and
// their tokens, so matching neither parses the pattern again nor allocates.
// It gives the same answers as path.Match for every valid pattern.
type glob struct {
	chunks []chunk
	// For patterns without classes and escapes, which match '/' only with a
	// literal '/': the pattern's parts between slashes, matched part by
	// part against the name's (segs), or, when the pattern is a literal
	// then one trailing '*', that literal (prefix, with star set).
	segs   []glob
	prefix string
	star   bool
}

// chunk is what path.Match's scanChunk returns: an optional leading star and
// the tokens up to the next star outside a class.
type chunk struct {
	star bool
	toks []token
}

type tokenKind uint8

const (
	tokLiteral tokenKind = iota + 1 // lit, byte for byte
	tokAny                          // ?: one rune, not '/'
	tokClass                        // [...]: one rune in (or not in) ranges
)

type token struct {
	kind    tokenKind
	negated bool
	lit     []byte
	ranges  []runeRange
}

type runeRange struct{ lo, hi rune }

// compileGlob checks pattern with path.Match and compiles it.
func compileGlob(pattern string) (glob, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return glob{}, err
	}
	g := chunks(pattern)
	if strings.ContainsAny(pattern, `[\`) {
		return g, nil
	}
	if lit, ok := strings.CutSuffix(pattern, "*"); ok && !strings.ContainsAny(lit, "*?") {
		g.prefix, g.star = lit, true
		return g, nil
	}
	if strings.Contains(pattern, "/") {
		for _, part := range strings.Split(pattern, "/") {
			g.segs = append(g.segs, chunks(part))
		}
	}
	return g, nil
}

func chunks(pattern string) glob {
	var g glob
	for rest := pattern; len(rest) > 0; {
		var c chunk
		var text string
		c.star, text, rest = scanChunk(rest)
		c.toks = tokens(text)
		g.chunks = append(g.chunks, c)
	}
	return g
}

// scanChunk is path.Match's: leading stars, then up to the next star that is
// not inside a class.
func scanChunk(pattern string) (star bool, chunk, rest string) {
	for len(pattern) > 0 && pattern[0] == '*' {
		pattern = pattern[1:]
		star = true
	}
	inrange := false
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			if i+1 < len(pattern) {
				i++
			}
		case '[':
			inrange = true
		case ']':
			inrange = false
		case '*':
			if !inrange {
				return star, pattern[:i], pattern[i:]
			}
		}
	}
	return star, pattern, ""
}

// tokens splits a chunk of a valid pattern into tokens, joining literal bytes.
func tokens(c string) []token {
	var toks []token
	lit := func(b byte) {
		if n := len(toks); n > 0 && toks[n-1].kind == tokLiteral {
			toks[n-1].lit = append(toks[n-1].lit, b)
			return
		}
		toks = append(toks, token{kind: tokLiteral, lit: []byte{b}})
	}
	for len(c) > 0 {
		switch c[0] {
		case '?':
			toks = append(toks, token{kind: tokAny})
			c = c[1:]
		case '[':
			var t token
			t, c = class(c[1:])
			toks = append(toks, t)
		case '\\':
			lit(c[1])
			c = c[2:]
		default:
			lit(c[0])
			c = c[1:]
		}
	}
	return toks
}

// class parses a valid class after its "[" and returns the rest.
func class(c string) (token, string) {
	t := token{kind: tokClass}
	if c[0] == '^' {
		t.negated = true
		c = c[1:]
	}
	for len(t.ranges) == 0 || c[0] != ']' {
		var r runeRange
		r.lo, c = classRune(c)
		r.hi = r.lo
		if c[0] == '-' {
			r.hi, c = classRune(c[1:])
		}
		t.ranges = append(t.ranges, r)
	}
	return t, c[1:]
}

func classRune(c string) (rune, string) {
	if c[0] == '\\' {
		c = c[1:]
	}
	r, n := utf8.DecodeRuneInString(c)
	return r, c[n:]
}

// match reports whether name matches, as path.Match(pattern, name) would.
func (g *glob) match(name []byte) bool {
	switch {
	case g.star:
		return bytes.HasPrefix(name, []byte(g.prefix)) && bytes.IndexByte(name[len(g.prefix):], '/') < 0
	case g.segs != nil:
		return g.matchSegs(name)
	}
	return g.matchChunks(name)
}

// matchSegs matches the name's parts between slashes with the pattern's.
func (g *glob) matchSegs(name []byte) bool {
	for i := range g.segs {
		part := name
		if i < len(g.segs)-1 {
			j := bytes.IndexByte(name, '/')
			if j < 0 {
				return false
			}
			part, name = name[:j], name[j+1:]
		} else if bytes.IndexByte(name, '/') >= 0 {
			return false
		}
		if !g.segs[i].matchChunks(part) {
			return false
		}
	}
	return true
}

func (g *glob) matchChunks(name []byte) bool {
	chunks := g.chunks
next:
	for len(chunks) > 0 {
		c := &chunks[0]
		chunks = chunks[1:]
		last := len(chunks) == 0
		if c.star && len(c.toks) == 0 {
			return bytes.IndexByte(name, '/') < 0
		}
		if t, ok := c.match(name); ok && (len(t) == 0 || !last) {
			name = t
			continue
		}
		if c.star {
			for i := 0; i < len(name) && name[i] != '/'; i++ {
				if t, ok := c.match(name[i+1:]); ok {
					if last && len(t) > 0 {
						continue
					}
					name = t
					continue next
				}
			}
		}
		return false
	}
	return len(name) == 0
}

// match is path.Match's matchChunk for a valid chunk.
func (c *chunk) match(s []byte) ([]byte, bool) {
	for i := range c.toks {
		t := &c.toks[i]
		if len(s) == 0 {
			return nil, false
		}
		switch t.kind {
		case tokLiteral:
			if !bytes.HasPrefix(s, t.lit) {
				return nil, false
			}
			s = s[len(t.lit):]
		case tokAny:
			if s[0] == '/' {
				return nil, false
			}
			_, n := utf8.DecodeRune(s)
			s = s[n:]
		case tokClass:
			r, n := utf8.DecodeRune(s)
			s = s[n:]
			if t.inClass(r) == t.negated {
				return nil, false
			}
		}
	}
	return s, true
}

func (t *token) inClass(r rune) bool {
	for _, rr := range t.ranges {
		if rr.lo <= r && r <= rr.hi {
			return true
		}
	}
	return false
}
