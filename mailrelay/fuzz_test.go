package mailrelay

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/jichitai/seccloud/mailrelay/internal/mailparse"
)

// FuzzParseCommand: the command parser never panics, never lets a control
// character through, and returns an upper-case verb.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"EHLO mx.example", "MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME", "RCPT TO: <c@d.example>",
		"mail from:<>", "DATA", "HELO a\x00b", "RCPT TO:<a@b\r\nMAIL FROM:<x@y>>", "QUIT", "MAIL FROM:<\"q\\\"x\"@b.example> SMTPUTF8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := parseCommand(line)
		if err != nil {
			return
		}
		if strings.ContainsAny(cmd.arg, "\r\n\x00") {
			t.Fatalf("control character passed: %q", cmd.arg)
		}
		if cmd.verb != strings.ToUpper(cmd.verb) {
			t.Fatalf("verb not upper-case: %q", cmd.verb)
		}
		for _, null := range []bool{false, true} {
			p, err := parsePath(cmd.arg, null, false)
			if err != nil {
				continue
			}
			if strings.ContainsAny(p.addr, "\r\n\x00<> ") {
				t.Fatalf("bad address accepted: %q", p.addr)
			}
			if p.addr != "" && (strings.ContainsAny(p.local, "%!") && p.local[0] != '"') {
				t.Fatalf("percent hack accepted: %q", p.addr)
			}
		}
		checkHelo(cmd.arg)
	})
}

// FuzzReadData: DATA parsing never panics, the result never holds a bare
// CR or LF, and the end is found only at CRLF.CRLF.
func FuzzReadData(f *testing.F) {
	for _, s := range []string{"Subject: x\r\n\r\nbody\r\n.\r\n", "a\n.\n", "a\r.\r\n", "..x\r\n.\r\n", ".\r\n",
		"x\r\n.\nMAIL FROM:<a@b>\r\n.\r\n", strings.Repeat("y", 70000) + "\r\n.\r\n", "\r\r\n.\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 64)
		out, err := readData(r, 1<<20, nil)
		if err != nil {
			return
		}
		for i := 0; i < len(out); i++ {
			switch out[i] {
			case '\r':
				if i+1 >= len(out) || out[i+1] != '\n' {
					t.Fatalf("bare CR in output %q", out)
				}
			case '\n':
				if i == 0 || out[i-1] != '\r' {
					t.Fatalf("bare LF in output %q", out)
				}
			}
		}
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
			t.Fatalf("output does not end in CRLF: %q", out)
		}
		if !bytes.Contains(append([]byte("\r\n"), in...), []byte("\r\n.\r\n")) {
			t.Fatalf("end found without CRLF.CRLF in %q", in)
		}
	})
}

// FuzzHeaderInfo: the header scanner never panics.
func FuzzHeaderInfo(f *testing.F) {
	f.Add([]byte("From: a <a@b.example>\r\nSubject: =?ISO-2022-JP?B?GyRCJEgbKEI=?=\r\n\tcont\r\nMessage-ID: <x@y>\r\n\r\nbody"))
	f.Add([]byte("Subject: =?UTF-8?Q?=E6=97=A5?=\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		headerInfo(in)
		addrDomain(string(in))
		countReceived(in)
	})
}

func BenchmarkReadData(b *testing.B) {
	in := []byte(strings.Repeat(strings.Repeat("x", 78)+"\r\n", 128) + ".\r\n")
	r := bufio.NewReaderSize(bytes.NewReader(in), 64<<10)
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for i := 0; i < b.N; i++ {
		r.Reset(bytes.NewReader(in))
		var err error
		if buf, err = readData(r, 1<<20, buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePath(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cmd, _ := parseCommand("MAIL FROM:<sender@client.bench.test> SIZE=10240 BODY=8BITMIME")
			if _, err := parsePath(cmd.arg, true, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestStripAuthResults(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"none", "Subject: x\r\n\r\nbody\r\n", "Subject: x\r\n\r\nbody\r\n"},
		{"forged ours", "Authentication-Results: relay.test; spf=pass\r\n\tdkim=pass\r\nSubject: x\r\n\r\nAuthentication-Results: relay.test\r\n",
			"Subject: x\r\n\r\nAuthentication-Results: relay.test\r\n"},
		{"other host kept", "Authentication-Results: mx.other.example; spf=pass\r\nSubject: x\r\n\r\nb\r\n",
			"Authentication-Results: mx.other.example; spf=pass\r\nSubject: x\r\n\r\nb\r\n"},
		{"prefix host kept", "Authentication-Results: relay.test.evil; spf=pass\r\n\r\nb\r\n",
			"Authentication-Results: relay.test.evil; spf=pass\r\n\r\nb\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(stripAuthResults([]byte(tc.in), "relay.test")); got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
}

func FuzzStripAuthResults(f *testing.F) {
	f.Add([]byte("Authentication-Results: relay.test; spf=pass\r\n\tx\r\nSubject: x\r\n\r\nb"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := stripAuthResults(in, "relay.test")
		if len(out) > len(in) {
			t.Fatalf("grew: %q -> %q", in, out)
		}
	})
}

// FuzzContentRewrite: subject tagging, sanitisation and the attachment
// checks never panic; a tagged message still has its body, and a
// sanitised one is a single text part with no URL left clickable.
func FuzzContentRewrite(f *testing.F) {
	f.Add([]byte("Subject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<a href=\"http://x.example/\">x</a>\r\n--b\r\nContent-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBAoAAQAAAA==\r\n--b--\r\n"))
	f.Add([]byte("From: a\r\n\r\nbody http://www.example.jp/x"))
	f.Add([]byte("Subject:\r\n\tfolded\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tagged := tagSubject(data, "[SPAM] ")
		if !bytes.Contains(tagged, []byte("[SPAM]")) {
			t.Fatalf("no tag in %q", tagged)
		}
		m := mailparse.Parse(data, mailparse.Limits{})
		_ = riskyAttachment(m)
		out := sanitize(data, m, "ID1")
		pm := mailparse.Parse(out, mailparse.Limits{})
		for _, p := range pm.Parts {
			if p.MediaType != "text/plain" && bytes.Contains(out[headerEnd(out):], []byte("--")) {
				t.Fatalf("sanitised message has a %s part", p.MediaType)
			}
		}
		for _, u := range mailparse.FindURLs(pm.Text()) {
			if strings.HasPrefix(strings.ToLower(u), "http") {
				t.Fatalf("clickable URL %q left in sanitised text", u)
			}
		}
	})
}
