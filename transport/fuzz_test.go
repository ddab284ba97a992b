package transport_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/redstream/chat/store/storetest"
)

// FuzzRESTBodies posts arbitrary bodies to every route that takes one: the
// server never answers 5xx and always answers JSON.
func FuzzRESTBodies(f *testing.F) {
	srv := storetest.Start(f, storetest.Options{})
	in := startInstance(f, srv, instanceOpts{})
	tok := mustUser(f, in.URL, "fuzzer")
	routes := []string{"/api/register", "/api/login", "/api/rooms", "/api/dms", "/api/rooms/general/messages"}
	for _, s := range []string{
		`{"username":"someone","password":"password1"}`, `{"name":"new-room"}`, `{"user":"fuzzer"}`,
		`{"text":"hello","client_id":"x"}`, `{"text":"` + "\u0000" + `"}`, `{"username":5}`, `[`, ``, `null`,
		`{"text":"\ud800"}`, `{"name":"` + string(bytes.Repeat([]byte("a"), 70)) + `"}`,
	} {
		for i := range routes {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := routes[int(route)%len(routes)]
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		in.Server.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusNoContent && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("POST %s %q: %d, body not JSON: %q", path, body, rec.Code, rec.Body)
		}
	})
}
