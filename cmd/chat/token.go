package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// tokenFileName is the file under the configuration directory that keeps
// the login. It holds a bearer token, so it is private to the user.
const tokenFileName = "token.json"

// savedLogin is the content of token.json.
type savedLogin struct {
	Server    string `json:"server"`
	Username  string `json:"username"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
}

// errNotLoggedIn is returned when there is no usable saved login.
var errNotLoggedIn = errors.New("not logged in; run chat login USER")

// expired reports whether the token's expiry has passed. An expiry that
// does not parse is left for the server to judge.
func (l *savedLogin) expired(now time.Time) bool {
	t, err := time.Parse(time.RFC3339, l.ExpiresAt)
	return err == nil && !now.Before(t)
}

func tokenPath(dir string) string { return filepath.Join(dir, tokenFileName) }

// loadLogin reads token.json from dir; errNotLoggedIn if there is none.
func loadLogin(dir string) (*savedLogin, error) {
	data, err := os.ReadFile(tokenPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNotLoggedIn
	}
	if err != nil {
		return nil, err
	}
	var l savedLogin
	if err := json.Unmarshal(data, &l); err != nil || l.Token == "" {
		return nil, fmt.Errorf("%s is damaged; run chat login USER", tokenPath(dir))
	}
	return &l, nil
}

// saveLogin writes token.json atomically with mode 0600, creating dir
// with mode 0700 if needed. The file is written under a temporary name and
// renamed, so a reader never sees half a token and an older file with
// looser permissions is replaced rather than reused.
func saveLogin(dir string, l *savedLogin) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".token-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), tokenPath(dir))
}

// removeLogin deletes token.json; a missing file is not an error.
func removeLogin(dir string) error {
	err := os.Remove(tokenPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
