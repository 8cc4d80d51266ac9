// Package store is seccloud's embedded default event store: it keeps every
// [detect.Event] for five years in append-only, zstd-compressed daily
// segments under one directory, with a per-segment index (time range,
// tenant, module) so that a query for one tenant and one day reads only
// that tenant's blocks of that day.
//
// A Store implements [detect.BatchWriter]; put it behind the asynchronous
// sink so the data path never waits for the disk:
//
//	st, err := store.Open(store.Config{Dir: filepath.Join(dataDir, "events")})
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	err = st.WriteEvents(ctx, batch) // durable against kill -9 on return
//	err = st.Query(ctx, store.Filter{Tenant: "t01", Module: "dns",
//		Since: from, Until: to}, func(e detect.Event) error {
//		out = detect.AppendECS(out[:0], &e)
//		_, err := w.Write(append(out, '\n'))
//		return err
//	})
//	rep, err := st.Verify(ctx) // or store.VerifyDir(ctx, dir) from another process
//
// Crash safety: WriteEvents returns once the batch is written to the
// operating system as one CRC-checked record of the write-ahead log; after
// kill -9 (or a panic) Open replays the log, drops a torn tail and keeps
// every acknowledged event. Sync adds power-loss durability.
//
// Tamper evidence: when a UTC day is over (plus Config.SealDelay) its part
// is sealed: an index and a footer are appended and the part's SHA-256 is
// chained to the previous sealed part's in the MANIFEST file. Verify
// recomputes the chain and names the first segment whose bytes or link do
// not match.
//
// Retention deletes whole UTC days once they are older than
// Config.Retention (default 1827 days, never less than five calendar
// years), recording each deletion in the chain.
//
// The on-disk format is described in README.md next to this file.
package store
