#!/usr/bin/env bash
# Builds benign.txt, the benign side of the DGA model's training set, from
# material on a Debian machine (no network). Run once by hand; the output
# is committed, so `go generate` does not need these sources. See README.md
# (section "Where the training names come from") for the licences.
#
#   1. registered domains named in /usr/share/doc and Python's library
#      (upstream home pages, mail addresses, project sites): real names;
#   2. the 15,000 most downloaded PyPI and 20,000 most downloaded npm
#      package names (the name lists in $PKGLISTS), as domain labels:
#      human-made brand-like names, one hyphen at most;
#   3. English words of the wamerican (SCOWL) list, 4–10 letters;
#   4. japan.txt: romanised Japanese place, company and service names
#      written for this project;
#   5. domain names mentioned in the one-line summaries of those PyPI and
#      npm lists (product and company sites): real names.
# Labels from 2–4 get a top-level domain picked by a fixed hash, weighted
# like a Japanese municipality's traffic (com, jp, co.jp, net, org, ...).
set -eu
cd "$(dirname "$0")"
PKGLISTS=${PKGLISTS:-/work/.library/env/packages}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

grep -rhoaE '\b([a-z0-9][a-z0-9-]{0,62}\.)+(com|net|org|jp|io|de|uk|fr|edu|gov|info|biz|ru|cn|br|it|nl|au|ca|eu|ch|se|us|co|me|tv|cc|dev|app|at|be|dk|fi|no|pl|cz|kr|tw|in)\b' \
	/usr/share/doc /usr/lib/python3* 2>/dev/null | tr 'A-Z' 'a-z' |
	grep -vE '(^|\.)(example|localhost|test|invalid)\.|^[0-9.]+\.[a-z]+$' | sort -u > "$tmp/doc"

{
	awk -F'\t' 'NR>1 && $4!="" {print $4"\t"$1}' "$PKGLISTS/pypi.tsv" | sort -n | cut -f2 | head -15000
	awk -F'\t' 'NR>1 {print $3"\t"$1}' "$PKGLISTS/npm.tsv" | sort -nr | cut -f2 | head -20000
	grep -E '^[a-z]{4,10}$' /usr/share/dict/words | awk 'NR%12==0'
} | tr 'A-Z_.' 'a-z--' | grep -E '^[a-z][a-z0-9]*(-[a-z0-9]+)?$' | awk 'length($0)>=3 && length($0)<=24' |
	awk '{ h=0; for(i=1;i<=length($0);i++){h=(h*31+index("abcdefghijklmnopqrstuvwxyz0123456789-",substr($0,i,1)))%1000003}
		if (index($0,"-")>0 && h%2==0) gsub("-","",$0)
		t="com"; m=h%100
		if(m>=45)t="jp"; if(m>=55)t="co.jp"; if(m>=63)t="net"; if(m>=73)t="org"; if(m>=80)t="io"; if(m>=84)t="de"
		if(m>=87)t="info"; if(m>=89)t="ne.jp"; if(m>=91)t="or.jp"; if(m>=93)t="co.uk"; if(m>=95)t="fr"; if(m>=97)t="dev"
		print $0"."t }' > "$tmp/pkg"

cut -f4- "$PKGLISTS/npm.tsv" "$PKGLISTS/pypi.tsv" |
	grep -oiE '\b[a-z0-9][a-z0-9-]{1,40}\.(com|net|org|io|ai|dev|jp|co\.jp|de|fr|uk|co|app|cloud|tech|me)\b' |
	tr 'A-Z' 'a-z' | sort -u > "$tmp/sum"

cat "$tmp/doc" "$tmp/pkg" "$tmp/sum" japan.txt | sort -u > benign.txt
wc -l benign.txt
