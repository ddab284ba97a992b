// Package config defines chatd's settings: the [Config] struct, its
// defaults, how it is read from the environment and the command line, and
// the rules that make it valid.
//
// Only cmd/chatd uses this package. It copies the fields it needs into the
// Options of engine, store and transport, which never import config and
// never read the environment themselves.
//
// # Sources
//
// [Load] starts from [Default], applies each environment variable (an empty
// one counts as unset), then each command-line flag, so a flag wins over
// its variable. Every variable has a flag: CHAT_TOKEN_TTL is -token-ttl,
// REDIS_URL is -redis-url, and so on; [Usage] lists them all. Durations are
// parsed with time.ParseDuration, booleans with strconv.ParseBool, numbers
// with strconv, and lists are comma-separated with spaces trimmed and empty
// items dropped.
//
// Load takes the environment as a function, so tests need no real
// environment:
//
//	cfg, err := config.Load(os.Args[1:], os.Getenv)
//	if errors.Is(err, flag.ErrHelp) {
//		fmt.Print(config.Usage())
//		return nil
//	}
//	if err != nil {
//		return err // names every bad variable, e.g. config: CHAT_TOKEN_TTL: "abc" is not a duration …
//	}
//
// # Secrets
//
// Flags show in ps to every local user, and the environment of a process
// to its owner and root. The signing key can therefore also come from a
// file, CHAT_JWT_SECRET_FILE (a Docker or Kubernetes secret), which Load
// reads into JWTSecret. The flags that carry secrets (-jwt-secret,
// -api-keys, -webhook-secret, a password in -redis-url) say so in [Usage].
//
// # Validation
//
// [Config.Validate] checks every rule and reports all problems at once,
// joined with errors.Join, each naming its variable and flag. Load calls
// it, so a Config from Load is always valid. Error messages never quote a
// secret, an API key or a URL, which may carry a password, and
// [Config.LogValue] redacts them when a Config is logged. In cluster mode
// REDIS_URL is a seed list; [ParseRedisSeeds] splits it into addresses
// and credentials.
package config
