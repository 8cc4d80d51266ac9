package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/jichitai/seccloud/appliance/console"
	"github.com/jichitai/seccloud/appliance/internal/app"
)

// cmdAccount is `seccloud account add|list|remove|passwd|totp`: the
// console's accounts in data_dir/console/accounts.json. Passwords are read
// from the first line of stdin, never from flags.
func cmdAccount(args []string, stdin io.Reader, stdout io.Writer) error {
	const syn = "account add|list|remove|passwd|totp [-user NAME] [-role R] [-tenant ID] [-totp] [-off] [-config FILE]"
	if len(args) == 0 {
		return usageError{"want a subcommand: " + syn}
	}
	sub := args[0]
	if isHelp(sub) {
		fmt.Fprintln(stdout, "Usage: seccloud "+syn)
		return flag.ErrHelp
	}
	fs := flags("account "+sub, syn)
	cfgPath := configFlag(fs)
	user := fs.String("user", "", "login `NAME` (a-z 0-9 . _ -)")
	role := fs.String("role", "", "`ROLE`: operator (all tenants), admin or viewer (one tenant)")
	tenantID := fs.String("tenant", "", "tenant `ID` of an admin or viewer")
	totp := fs.Bool("totp", false, "add: also set a TOTP second factor and print its otpauth:// URI")
	off := fs.Bool("off", false, "totp: remove the second factor instead of setting a new one")
	pos, err := parseInterleaved(fs, args[1:], stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"unexpected arguments: " + strings.Join(pos, " ")}
	}
	ad := &app.Admin{ConfigPath: *cfgPath, Out: stdout}
	needUser := func() error {
		if *user == "" {
			return usageError{"want -user NAME"}
		}
		return nil
	}
	switch sub {
	case "add":
		if err := needUser(); err != nil {
			return err
		}
		if !console.Role(*role).Valid() {
			return usageError{"want -role operator, admin or viewer"}
		}
		return ad.AccountAdd(*user, *tenantID, console.Role(*role), *totp, stdin)
	case "list":
		return ad.AccountList()
	case "remove":
		if err := needUser(); err != nil {
			return err
		}
		return ad.AccountRemove(*user)
	case "passwd":
		if err := needUser(); err != nil {
			return err
		}
		return ad.AccountPassword(*user, stdin)
	case "totp":
		if err := needUser(); err != nil {
			return err
		}
		return ad.AccountTOTP(*user, !*off)
	}
	return usageError{fmt.Sprintf("unknown subcommand %q: want %s", sub, syn)}
}
