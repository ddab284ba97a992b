package engine_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the domain free of adapters: engine imports no
// HTTP framework, WebSocket, Redis client or other package of ours.
func TestDependencies(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/transport", "/store", "/config", "labstack/echo", "coder/websocket", "redis/go-redis"} {
			if strings.Contains(dep, banned) {
				t.Errorf("engine depends on %s", dep)
			}
		}
	}
}
