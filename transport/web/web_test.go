package web

import (
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strconv"
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

// contrastPairs lists every text colour of the stylesheet with the
// backgrounds it is drawn on. TestContrast checks each pair in both
// themes; TestContrastPairsCoverStylesheet fails when the stylesheet uses
// a colour for text or as a background that this list does not name.
var contrastPairs = map[string][]string{
	"--text":         {"--bg", "--bg-soft", "--sidebar", "--sidebar-hover", "--bubble", "--border"},
	"--muted":        {"--bg", "--bg-soft", "--sidebar", "--sidebar-hover", "--bubble"},
	"--bg":           {"--muted"}, // a plain unread count
	"--accent-text":  {"--accent", "--accent-hover"},
	"--own-text":     {"--own"},
	"--accent-fg":    {"--accent-soft", "--bg", "--bg-soft", "--sidebar", "--bubble"},
	"--mention-text": {"--mention-bg"},
	"--danger":       {"--danger-soft"},
	"--warn":         {"--warn-soft"},
	"--online-text":  {"--bg"},
	"--avatar-text":  avatarColours(),
}

// notTextBackgrounds are colours the stylesheet paints without text on
// them: the online dot and the thin rules of the "New" divider.
var notTextBackgrounds = map[string]bool{"--online": true, "--accent-fg": true}

func avatarColours() []string {
	var out []string
	for i := range 24 {
		out = append(out, fmt.Sprintf("--avatar-%d", i))
	}
	return out
}

// themes returns the custom properties of the light theme (the first
// :root block) and of the dark one (the light values overridden by the
// :root block inside the prefers-color-scheme: dark query).
func themes(tb testing.TB, css string) (light, dark map[string]string) {
	tb.Helper()
	decls := regexp.MustCompile(`(--[a-z0-9-]+)\s*:\s*([^;]+);`)
	block := func(from int) string {
		open := strings.Index(css[from:], "{")
		end := strings.Index(css[from:], "}")
		if open < 0 || end < open {
			tb.Fatalf("no block after offset %d", from)
		}
		return css[from+open+1 : from+end]
	}
	parse := func(b string, into map[string]string) {
		for _, m := range decls.FindAllStringSubmatch(b, -1) {
			into[m[1]] = strings.TrimSpace(m[2])
		}
	}
	root := strings.Index(css, ":root")
	media := strings.Index(css, "@media (prefers-color-scheme: dark)")
	if root < 0 || media < 0 {
		tb.Fatal("style.css lacks :root or the dark-mode query")
	}
	darkRoot := media + strings.Index(css[media:], ":root")
	light, dark = map[string]string{}, map[string]string{}
	parse(block(root), light)
	parse(block(root), dark)
	parse(block(darkRoot), dark)
	return light, dark
}

// luminance is the WCAG 2 relative luminance of a #rrggbb colour.
func luminance(tb testing.TB, name, hex string) float64 {
	tb.Helper()
	if !regexp.MustCompile(`^#[0-9a-fA-F]{6}$`).MatchString(hex) {
		tb.Fatalf("%s is %q; text and background colours must be #rrggbb so they can be checked", name, hex)
	}
	var rgb [3]float64
	for i := range rgb {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		c := float64(v) / 255
		if c <= 0.04045 {
			rgb[i] = c / 12.92
		} else {
			rgb[i] = math.Pow((c+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*rgb[0] + 0.7152*rgb[1] + 0.0722*rgb[2]
}

func contrast(tb testing.TB, vars map[string]string, fg, bg string) float64 {
	tb.Helper()
	a, b := luminance(tb, fg, vars[fg]), luminance(tb, bg, vars[bg])
	if a < b {
		a, b = b, a
	}
	return (a + 0.05) / (b + 0.05)
}

// TestContrast checks WCAG AA for normal text (4.5:1) on every
// text/background pair of the palette, in the light and the dark theme,
// from the CSS variables the browser uses.
func TestContrast(t *testing.T) {
	t.Parallel()
	css, err := static.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	light, dark := themes(t, string(css))
	for theme, vars := range map[string]map[string]string{"light": light, "dark": dark} {
		for fg, bgs := range contrastPairs {
			for _, bg := range bgs {
				if _, ok := vars[fg]; !ok {
					t.Errorf("%s: %s is not defined", theme, fg)
					continue
				}
				if _, ok := vars[bg]; !ok {
					t.Errorf("%s: %s is not defined", theme, bg)
					continue
				}
				if c := contrast(t, vars, fg, bg); c < 4.5 {
					t.Errorf("%s theme: %s (%s) on %s (%s) is %.2f:1, want at least 4.5:1", theme, fg, vars[fg], bg, vars[bg], c)
				}
			}
		}
	}
	// The check itself: the colours issue 18 found too faint fail it.
	bad := map[string]string{"--w": "#ffffff", "--old-accent": "#e5484d"}
	if c := contrast(t, bad, "--w", "--old-accent"); c >= 4.5 || c < 3.8 {
		t.Errorf("white on #e5484d computes as %.2f:1, want about 3.9:1", c)
	}
}

// TestContrastPairsCoverStylesheet fails when a rule draws text in a
// colour, or on a background, that contrastPairs does not check.
func TestContrastPairsCoverStylesheet(t *testing.T) {
	t.Parallel()
	css, err := static.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	fgs, bgs := map[string]bool{}, map[string]bool{}
	for fg, list := range contrastPairs {
		fgs[fg] = true
		for _, bg := range list {
			bgs[bg] = true
		}
	}
	for _, m := range regexp.MustCompile(`(?m)(^|[\s;{])(color|background|background-color)\s*:\s*([^;}]*)`).FindAllStringSubmatch(string(css), -1) {
		for _, v := range regexp.MustCompile(`var\((--[a-z0-9-]+)\)`).FindAllStringSubmatch(m[3], -1) {
			name := v[1]
			switch {
			case m[2] == "color" && !fgs[name]:
				t.Errorf("style.css draws text in %s, which contrastPairs does not check", name)
			case m[2] != "color" && !bgs[name] && !notTextBackgrounds[name]:
				t.Errorf("style.css paints a background in %s, which contrastPairs does not check", name)
			}
		}
		if m[2] == "color" && regexp.MustCompile(`#[0-9a-fA-F]{3,8}\b|rgb`).MatchString(m[3]) {
			t.Errorf("style.css sets a text colour without a variable (%s); give it one so it is checked", strings.TrimSpace(m[3]))
		}
	}
}
