package cache

import (
	"encoding/json"
	"net/http"
)

// PurgeHandler returns the purge API of the cache:
//
//	POST ?url=https://host/path          removes that URL (all variants)
//	POST ?prefix=https://host/news/      removes every URL under the prefix
//
// (the parameters may also come as a form body). A URL without a scheme
// ("host/path") purges both http and https. The answer is JSON
// {"purged": n}. Other methods get 405, no parameter 400. The handler does
// no authentication: mount it on a loopback or admin listener only.
func (c *Cache) PurgeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
			return
		}
		var n int
		switch u, p := r.Form.Get("url"), r.Form.Get("prefix"); {
		case u != "":
			n = c.Purge(u)
		case p != "":
			n = c.PurgePrefix(p)
		default:
			http.Error(w, "want url= or prefix=", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"purged": n})
	})
}
