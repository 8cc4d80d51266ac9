// Package tenant describes the connecting bodies (接続団体) of the security
// cloud — municipalities whose terminals, mail domains, DNS zones and web
// sites go through it — and answers "which tenant is this?" for every
// security function.
//
// Build an immutable, validated [Snapshot] from a tenant list, keep it in a
// [Live] that swaps snapshots atomically on reload, and pass the Live (or
// any [Directory]) to the functions:
//
//	snap, err := tenant.NewSnapshot(tenants, tenant.Options{})
//	if err != nil {
//		// err is tenant.Errors: every problem, each naming tenant and field.
//	}
//	dir := tenant.NewLive(snap)
//	t, ok := dir.ByAddr(clientAddr) // longest-prefix match, 0 allocs
//
// [History] keeps every applied configuration as a numbered generation on
// disk, for rollback and diff.
//
// Lookups are allocation-free and safe for concurrent use. A request that
// needs one consistent view calls [Live.Load] once and keeps the snapshot;
// reloads never change a snapshot in use.
package tenant
