package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func get(tb testing.TB, h http.Handler, method, target string, hdr map[string]string) (*http.Response, string) {
	tb.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return res, string(body)
}

func TestHandler(t *testing.T) {
	t.Parallel()
	h := Handler()
	tests := []struct {
		name, method, path string
		status             int
		ctype              string // prefix; empty: don't care
		body               string // substring; empty: don't care
	}{
		{"index", http.MethodGet, "/", http.StatusOK, "text/html", `<script type="module" src="app.js">`},
		{"index by name", http.MethodGet, "/index.html", http.StatusOK, "text/html", "data-testid=\"messages\""},
		{"app module", http.MethodGet, "/app.js", http.StatusOK, "text/javascript", "import"},
		{"other module", http.MethodGet, "/chat.js", http.StatusOK, "text/javascript", "export class Chat"},
		{"stylesheet", http.MethodGet, "/style.css", http.StatusOK, "text/css", ":root"},
		{"head", http.MethodHead, "/app.js", http.StatusOK, "text/javascript", ""},
		{"unknown", http.MethodGet, "/nope.js", http.StatusNotFound, "", ""},
		{"unknown dir", http.MethodGet, "/static/app.js", http.StatusNotFound, "", ""},
		{"traversal", http.MethodGet, "/../web.go", http.StatusNotFound, "", ""},
		{"post", http.MethodPost, "/", http.StatusMethodNotAllowed, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, body := get(t, h, tc.method, tc.path, nil)
			if res.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.status)
			}
			// Security headers go on every response, errors included.
			want := map[string]string{
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "no-referrer",
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if ct := res.Header.Get("Content-Type"); tc.ctype != "" && !strings.HasPrefix(ct, tc.ctype) {
				t.Errorf("Content-Type = %q, want %s…", ct, tc.ctype)
			}
			if tc.body != "" && !strings.Contains(body, tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
			if tc.method == http.MethodHead && body != "" {
				t.Errorf("HEAD returned a body of %d bytes", len(body))
			}
		})
	}
}

func TestCSP(t *testing.T) {
	t.Parallel()
	for _, directive := range []string{
		"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
		"base-uri 'none'", "form-action 'self'", "img-src 'self' data:", "connect-src 'self' ws: wss:",
	} {
		if !strings.Contains(ContentSecurityPolicy, directive) {
			t.Errorf("CSP lacks %q", directive)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("CSP allows something unsafe: %s", ContentSecurityPolicy)
	}
}

func TestETagRevalidation(t *testing.T) {
	t.Parallel()
	h := Handler()
	res, _ := get(t, h, http.MethodGet, "/app.js", nil)
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	res, body := get(t, h, http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("revalidation: status %d, %d bytes; want 304 and no body", res.StatusCode, len(body))
	}
}

// inlineCode lists what in an HTML page the CSP would block or that loads
// from elsewhere: inline scripts, style elements and attributes, event
// handler attributes, javascript: URLs and remote resources.
func inlineCode(page string) []string {
	var found []string
	for _, tag := range regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		if !regexp.MustCompile(`(?i)\ssrc\s*=`).MatchString(tag[1]) || strings.TrimSpace(tag[2]) != "" {
			found = append(found, "inline script")
		}
	}
	for what, re := range map[string]*regexp.Regexp{
		"style element":   regexp.MustCompile(`(?i)<style\b`),
		"style attribute": regexp.MustCompile(`(?i)\sstyle\s*=`),
		"event handler":   regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
		"javascript: URL": regexp.MustCompile(`(?i)javascript:`),
		"remote resource": regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`),
	} {
		if re.MatchString(page) {
			found = append(found, what)
		}
	}
	return found
}

// TestNoInlineCode guards the CSP: the browser would block inline code, so
// the page must hold none.
func TestNoInlineCode(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		`<script>alert(1)</script>`,
		`<script type="module">import "./x.js"</script>`,
		`<div style="color:red">`,
		`<button onclick="go()">`,
		`<style>p{}</style>`,
		`<a href="javascript:go()">`,
		`<script src="https://cdn.example/x.js"></script>`,
	} {
		if len(inlineCode(bad)) == 0 {
			t.Errorf("inlineCode missed %s", bad)
		}
	}
	page, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if found := inlineCode(string(page)); len(found) > 0 {
		t.Errorf("index.html has: %s", strings.Join(found, ", "))
	}
}

// TestModules checks that every relative import of every module names an
// embedded file (a typo would only show as a blank page in the browser),
// and that no module feeds strings to the HTML parser.
func TestModules(t *testing.T) {
	t.Parallel()
	h := Handler()
	importRe := regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]|^\s*import\s+['"](\.[^'"]+)['"]`)
	htmlSinks := regexp.MustCompile(`\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(`)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".js" {
			return err
		}
		src, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		if loc := htmlSinks.FindIndex(src); loc != nil {
			t.Errorf("%s uses %q; render text with textContent", p, src[loc[0]:loc[1]])
		}
		for _, m := range importRe.FindAllSubmatch(src, -1) {
			spec := string(m[1]) + string(m[2])
			target := path.Join("/", path.Dir(strings.TrimPrefix(p, "static")), spec)
			if res, _ := get(t, h, http.MethodGet, target, nil); res.StatusCode != http.StatusOK {
				t.Errorf("%s imports %s: %s answers %d", p, spec, target, res.StatusCode)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
