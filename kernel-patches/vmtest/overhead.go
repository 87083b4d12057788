package main

func testOverheadOnly(t *T) {
	t.Skipf("overhead: not yet")
}
