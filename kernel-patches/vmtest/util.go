package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// checkHelper waits for a helper and turns its "bad" lines into failures.
func checkHelper(t *T, p *proc) []string {
	lines, err := p.lines()
	oks := 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "bad "):
			t.Errorf("helper: %s", l[4:])
		case strings.HasPrefix(l, "ok "):
			oks++
		}
	}
	if err != nil {
		t.Errorf("helper exited: %v; output:\n%s", err, strings.Join(lines, "\n"))
	} else if oks == 0 {
		t.Errorf("helper checked nothing; output:\n%s", strings.Join(lines, "\n"))
	}
	return lines
}

// startAs runs argv as uid (and gid) with no capabilities.
func startAs(t *T, uid int, argv ...string) *proc {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)},
	}
	return startCmd(t, cmd)
}

func startCmd(t *T, cmd *exec.Cmd) *proc {
	cmd.Stderr = os.Stdout
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", cmd.Args, err)
	}
	return newProc(cmd, stdin, stdout)
}

// waitZombie waits until pid has exited but is not reaped.
func waitZombie(t *T, pid int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 && strings.HasPrefix(s[i:], ") Z") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("pid %d never became a zombie", pid)
}

// waitThreads waits until pid has at least n threads.
func waitThreads(t *T, pid, n int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); len(ents) >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("pid %d never had %d threads", pid, n)
}
