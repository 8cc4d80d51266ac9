package notify_test

import (
	"fmt"
	"time"

	"github.com/jichitai/seccloud/detect/notify"
	"github.com/jichitai/seccloud/tenant"
)

func ExampleLadder() {
	contacts := []tenant.Contact{
		{Name: "情報政策課 担当", Email: "joho@city.tsu.example.jp", Webhook: "https://chat.example.jp/hooks/abc"},
		{Name: "情報政策課長", Email: "kacho@city.tsu.example.jp"},
		{Name: "CISO", Phone: "059-000-0000"}, // phone only: the SOC calls
	}
	for _, s := range notify.Ladder(contacts, []time.Duration{5 * time.Minute}, 15*time.Minute) {
		fmt.Println(s.After, s.Channel, s.Address)
	}
	// Output:
	// 0s email joho@city.tsu.example.jp
	// 0s webhook https://chat.example.jp/hooks/abc
	// 5m0s email kacho@city.tsu.example.jp
}
