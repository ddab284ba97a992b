package transport_test

import (
	"net/http"
	"testing"

	"github.com/redstream/chat/store/storetest"
)

// A room name in a path is decoded once (issue 14, finding 13): the
// escaped colons of dm%3Aalice%3Abob name the direct room, and the
// doubly escaped dm%253Aalice%253Abob names "dm%3Aalice%3Abob", which is
// no room name at all, never the direct room.
func TestRoomPathDecodedOnce(t *testing.T) {
	t.Parallel()
	in := startInstance(t, storetest.Start(t, storetest.Options{}), instanceOpts{})
	alice := mustUser(t, in.URL, "alice")
	mustUser(t, in.URL, "bob")
	if st := api(t, in.URL, "POST", "/api/dms", alice, map[string]string{"user": "bob"}, nil); st != http.StatusOK {
		t.Fatalf("POST /api/dms: %d", st)
	}
	mustPost(t, in.URL, alice, "dm:alice:bob", "just between us")
	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/api/rooms/dm:alice:bob/messages", 200, ""},
		{"/api/rooms/dm%3Aalice%3Abob/messages", 200, ""},
		{"/api/rooms/dm%253Aalice%253Abob/messages", 400, "invalid"},
		{"/api/rooms/dm%25253Aalice%25253Abob/messages", 400, "invalid"},
	} {
		a := restCall(t, in.URL, "GET", c.path, alice, nil)
		wantStatus(t, "GET "+c.path, a, c.status, c.code)
	}
}
