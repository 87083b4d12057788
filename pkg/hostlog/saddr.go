package hostlog

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strconv"
)

// interpretSaddr renders a hex sockaddr as auditd's ENRICHED SADDR value.
func interpretSaddr(h string) (string, bool) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) < 2 {
		return "", false
	}
	fam := binary.NativeEndian.Uint16(b)
	switch fam {
	case 1: // AF_UNIX
		p := b[2:]
		if len(p) > 0 && p[0] == 0 {
			return "{ saddr_fam=local path=@" + cstr(p[1:]) + " }", true
		}
		return "{ saddr_fam=local path=" + cstr(p) + " }", true
	case 2: // AF_INET
		if len(b) < 8 {
			return "", false
		}
		addr := netip.AddrFrom4([4]byte(b[4:8]))
		return "{ saddr_fam=inet laddr=" + addr.String() + " lport=" + strconv.Itoa(int(binary.BigEndian.Uint16(b[2:]))) + " }", true
	case 10: // AF_INET6
		if len(b) < 24 {
			return "", false
		}
		addr := netip.AddrFrom16([16]byte(b[8:24]))
		return "{ saddr_fam=inet6 laddr=" + addr.String() + " lport=" + strconv.Itoa(int(binary.BigEndian.Uint16(b[2:]))) + " }", true
	case 16: // AF_NETLINK
		if len(b) < 12 {
			return "", false
		}
		return "{ saddr_fam=netlink nlnk-fam=" + strconv.Itoa(int(fam)) + " nlnk-pid=" + strconv.Itoa(int(binary.NativeEndian.Uint32(b[4:]))) + " }", true
	}
	return "", false
}

func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
