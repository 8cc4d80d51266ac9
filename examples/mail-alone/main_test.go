package main

import (
	"context"
	"fmt"
	"net/netip"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
)

type events struct {
	mu sync.Mutex
	ev []detect.Event
}

func (s *events) Emit(e detect.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ev = append(s.ev, e)
}

func (s *events) messages() []detect.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []detect.Event
	for _, e := range s.ev {
		if e.Dataset == "mail.message" {
			out = append(out, e)
		}
	}
	return out
}

// TestRelay runs the example between net/smtp (a sender on the internet)
// and a recording mail server of the municipality.
func TestRelay(t *testing.T) {
	cityMX, err := mailrelaytest.NewSink()
	require.NoError(t, err)
	defer cityMX.Close()
	var ev events
	r, err := New(Config{
		Addr: "127.0.0.1:0", Hostname: "relay.example.jp", Network: netip.MustParsePrefix("127.0.1.0/24"),
		Domain: "city.example.jp", MailServer: cityMX.Addr, QueueDir: t.TempDir(), Sink: &ev,
	})
	require.NoError(t, err)

	send := func(file string) error {
		data, err := os.ReadFile("testdata/" + file)
		require.NoError(t, err)
		return smtp.SendMail(r.Addr(), nil, "a@internet.example", []string{"mayor@city.example.jp"}, data)
	}
	require.NoError(t, send("clean.eml"))
	err = send("invoice.eml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "550", "the executable attachment is refused")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := cityMX.Wait(ctx, 1)
	require.Len(t, got, 1)
	assert.Contains(t, string(got[0].Data), "Message-ID: <clean-1@internet.example>")
	require.NoError(t, r.Shutdown(context.Background()))
	assert.Len(t, cityMX.Messages(), 1, "the refused message was never delivered")

	msgs := ev.messages()
	require.Len(t, msgs, 2)
	assert.Equal(t, detect.ActionAllow, msgs[0].Verdict.Action)
	assert.Equal(t, "市長へのご質問", msgs[0].Email.Subject)
	assert.Equal(t, detect.ActionBlock, msgs[1].Verdict.Action)
	assert.Equal(t, ruleAttachment, msgs[1].Verdict.Rule)
	assert.Equal(t, "city", msgs[1].Tenant)
}

func TestAttachmentFilter(t *testing.T) {
	mixed := func(part string) string {
		return "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n" +
			part + "\r\n\r\nAAAA\r\n--b--\r\n"
	}
	// nested wraps part in n levels of multipart/mixed.
	nested := func(n int, part string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
		}
		return b.String() + part + "\r\n\r\nAAAA\r\n"
	}
	tests := []struct {
		name, msg string
		want      detect.Action
		err       bool
	}{
		{"plain text", "Subject: x\r\n\r\nhello\r\n", detect.ActionAllow, false},
		{"pdf attachment", mixed(`Content-Disposition: attachment; filename="report.pdf"`), detect.ActionAllow, false},
		{"exe by Content-Disposition", mixed(`Content-Disposition: attachment; filename="setup.exe"`), detect.ActionBlock, false},
		{"js by Content-Type name", mixed(`Content-Type: application/octet-stream; name=run.JS`), detect.ActionBlock, false},
		{"encoded-word name", mixed(`Content-Disposition: attachment; filename="=?UTF-8?B?6KuL5rGC5pu4LmV4ZQ==?="`), detect.ActionBlock, false},
		{"trailing dot", mixed(`Content-Disposition: attachment; filename="a.scr."`), detect.ActionBlock, false},
		{"not in the default list", mixed(`Content-Disposition: attachment; filename="macro.docm"`), detect.ActionAllow, false},
		{"nested", nested(3, `Content-Disposition: attachment; filename="x.lnk"`), detect.ActionBlock, false},
		{"nested too deep", nested(maxDepth+2, `Content-Disposition: attachment; filename="x.lnk"`), detect.ActionNone, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := AttachmentFilter{}.Check(context.Background(), &mailrelay.Message{Data: []byte(tt.msg)})
			if tt.err {
				require.Error(t, err, "an unreadable structure defers the message")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, v.Action, v.Reason)
		})
	}
}
