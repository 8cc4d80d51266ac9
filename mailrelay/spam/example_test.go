package spam_test

import (
	"context"
	"fmt"

	"github.com/jichitai/seccloud/mailrelay/spam"
)

func ExampleScorer_Score() {
	sc, err := spam.New(spam.Config{})
	if err != nil {
		panic(err)
	}
	msg := []byte("From: Shop <news@shop.example>\r\nSubject: =?UTF-8?B?44CQ5bqD5ZGK44CR5Yas44Gu44K744O844Or?=\r\n" +
		"List-Unsubscribe: <mailto:u@shop.example>\r\n\r\nhttp://bit.ly/abc\r\n")
	rep := sc.Score(context.Background(), spam.Input{Raw: msg})
	fmt.Println("advertising:", rep.Bulk.Ad, rep.Bulk.Marks)
	for _, h := range rep.Hits {
		if h.Rule == "URL_SHORTENER" {
			fmt.Println(h.Rule, h.Points, h.Detail)
		}
	}
	// Output:
	// advertising: true [subject:【広告】 list-unsubscribe]
	// URL_SHORTENER 1.5 bit.ly
}
