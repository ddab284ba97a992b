package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response. connect-src names ws:
// and wss: because CSP Level 2 browsers do not treat 'self' as covering the
// WebSocket scheme of the page's own host.
const ContentSecurityPolicy = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; " +
	"style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// contentTypes fixes the types of the files we ship instead of trusting the
// host's MIME database, which can map .js to text/plain; browsers refuse to
// run a module served with a non-JavaScript type.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

// file is one embedded file, ready to serve.
type file struct {
	name  string // base name, for http.ServeContent
	body  []byte
	ctype string
	etag  string
}

// handler serves a fixed set of files; it holds no mutable state, so it is
// safe for concurrent use.
type handler struct {
	files map[string]file // by URL path, "/" for index.html
}

// Handler returns the handler of the web client: index.html at "/", the
// other files of static/ at their names, and 404 for anything else. It
// answers GET and HEAD, sets the security headers on every response and an
// ETag so browsers revalidate instead of running stale code after an
// upgrade. The returned handler is safe for concurrent use.
func Handler() http.Handler {
	h := &handler{files: make(map[string]file)}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := file{name: path.Base(p), body: body, ctype: typeOf(p), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		urlPath := strings.TrimPrefix(p, "static")
		h.files[urlPath] = f
		if urlPath == "/index.html" {
			h.files["/"] = f
		}
		return nil
	})
	if err != nil {
		// The files are compiled in; failing to read them is a broken build.
		panic("web: read embedded files: " + err.Error())
	}
	return h
}

func typeOf(name string) string {
	ext := path.Ext(name)
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, ok := h.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	// ServeContent answers If-None-Match with 304, Range requests and HEAD.
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
}
