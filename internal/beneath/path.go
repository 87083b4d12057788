package beneath

import (
	"fmt"
	"strings"
)

// CheckAbs reports whether p is a clean absolute path: it starts with "/",
// and has no "." or ".." element, no "//", no trailing "/" and no NUL. The
// error names field ("deliver.file", "socket", ...) and says what is wrong.
func CheckAbs(field, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s is empty", field)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%s %q must be an absolute path", field, p)
	case p == "/":
		return fmt.Errorf("%s %q is the root directory", field, p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%s %q contains a NUL byte", field, p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("%s %q must not end in \"/\"", field, p)
	case strings.Contains(p, "//"):
		return fmt.Errorf("%s %q must not contain \"//\"", field, p)
	}
	for _, e := range strings.Split(p[1:], "/") {
		if e == "." || e == ".." {
			return fmt.Errorf("%s %q must not contain a %q element", field, p, e)
		}
	}
	return nil
}

// Inside reports whether p lies strictly inside dir. Both must be clean
// absolute paths (CheckAbs); an unclean one is never inside anything.
func Inside(p, dir string) bool {
	if CheckAbs("", p) != nil || (dir != "/" && CheckAbs("", dir) != nil) {
		return false
	}
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// Rel returns p relative to dir, which it must lie strictly inside (see
// Inside), or an error naming field.
func Rel(field, dir, p string) (string, error) {
	if err := CheckAbs(field, p); err != nil {
		return "", err
	}
	if !Inside(p, dir) {
		return "", fmt.Errorf("%s %q is not inside %q", field, p, dir)
	}
	return strings.TrimPrefix(p, strings.TrimSuffix(dir, "/")+"/"), nil
}
