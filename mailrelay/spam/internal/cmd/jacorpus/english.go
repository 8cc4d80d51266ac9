package main

// English pools (written for seccloud): today's phishing, extortion,
// business e-mail compromise, advance-fee, crypto and pharmacy spam, and
// today's legitimate mail — service notifications, shipping and order
// mail, password notices from a real IT desk, work threads. The
// SpamAssassin corpus (2002) has none of these kinds.

var enSpamSubjects = [][]string{
	{"Action required: your mailbox is almost full", "Your {ebrand} account has been suspended", "Unusual sign-in activity detected",
		"Your password expires today", "Payment declined - update your billing information", "[{ebrand}] Verify your account within 24 hours",
		"You have 3 undelivered messages", "Shared document: {edoc}.pdf", "Your package could not be delivered"},
	{"I recorded you", "Your device has been hacked", "Final warning", "I know your password"},
	{"Urgent wire transfer request", "Change of bank details for invoice {num}", "Are you available? Quick favour", "Confidential acquisition - please handle"},
	{"Congratulations! You have been selected", "Claim your $1,000 gift card", "Inheritance fund of $4.5 million", "Your prize is waiting"},
	{"Turn $250 into $10,000 in one week", "This coin will explode 100x", "Exclusive crypto investment opportunity", "Make money from home today"},
	{"Cheap meds online, no prescription", "Lose 20 lbs in 2 weeks", "Best replica watches 80% off", "Boost your website to #1 on Google"},
}

var enSpamBodies = [][]string{
	{"Dear user,", "Your mailbox storage is 99% full and you will stop receiving new messages.", "We detected an unusual sign-in to your {ebrand} account from a new device.",
		"To avoid suspension, verify your account within 24 hours.", "Click the link below to confirm your identity:", "Verify now: {eurl}",
		"Update your billing information to keep your subscription active.", "If you do not take action, your account will be permanently deleted.",
		"Sign in to view the shared document: {eurl}", "Your payment could not be processed. Please update your card details.",
		"Reschedule your delivery here: {eurl}", "Thank you, The {ebrand} Security Team", "This is an automated message, please do not reply."},
	{"I am a hacker who gained access to your device months ago.", "I recorded you through your webcam while you were visiting adult websites.",
		"Send $1,500 in Bitcoin to the address below within 48 hours.", "BTC address: bc1q{num}x{num}p{num}", "If I do not receive the payment, I will send the video to all your contacts.",
		"Do not try to contact the police. I will know.", "Your password is {num}{ebrand}{num}, as you can see I know everything."},
	{"Hi, are you at your desk?", "I need you to process an urgent wire transfer today.", "Our bank details have changed due to an audit. Please use the new account for all future payments.",
		"New account: {ebank}, account number {num}{num}{num}, routing {num}{num}.", "Please keep this confidential until the deal is announced.",
		"I am in a meeting and cannot take calls. Reply by email.", "Can you buy four gift cards and send me the codes?"},
	{"Congratulations! Your email address was selected in our annual draw.", "You have won $1,000,000. To claim your prize, send your full name, address and phone number.",
		"I am a lawyer representing the estate of a late client who shares your surname.", "A processing fee of $250 is required to release the funds.",
		"Claim your reward here: {eurl}", "This offer expires in 24 hours."},
	{"Our members made $10,000 last week with this simple system.", "No experience needed, just 10 minutes a day.", "This coin is about to be listed and will go 100x.",
		"Guaranteed returns of 30% per month.", "Join now before it is too late: {eurl}", "Limited spots available!"},
	{"Buy Viagra, Cialis and more at the lowest prices.", "No prescription needed, discreet worldwide shipping.", "Lose weight fast without diet or exercise.",
		"Top quality replica watches and bags.", "We guarantee first page ranking on Google.", "Order now: {eurl}", "To unsubscribe reply REMOVE."},
}

var enHamKinds = []struct{ subjects, bodies []string }{
	{[]string{"Re: project timeline", "Meeting notes from {eday}", "Draft budget for review", "Re: Re: vendor contract", "Agenda for {eday}'s workshop",
		"Quick question about the report", "Fwd: updated schedule"},
		[]string{"Hi {ename},", "Thanks for sending this over.", "I looked at the draft and left a few comments in the document.", "Can we move the review meeting to {eday}?",
			"The numbers in section 3 look off; could you double-check them?", "Attached are the notes from today's meeting.", "Let me know if I missed anything.",
			"I'll be out of the office on {eday}, so let's sync before then.", "Sounds good to me.", "Best regards,\n{ename}", "Thanks,\n{ename}",
			"> On {eday}, {ename} wrote:\n> Could you send me the spreadsheet?"}},
	{[]string{"[{erepo}] Pull request merged (#{num})", "Your {ebrand} order has shipped", "Your receipt from {ebrand}", "Reminder: {eevent} tomorrow at {num}:00",
		"Your monthly statement is ready", "Invitation: {eevent} @ {eday}"},
		[]string{"Your order #{num}-{num} has shipped and will arrive on {eday}.", "You can track your package in your account.", "Merged #{num} into main.",
			"You are receiving this because you were mentioned.", "Reply to this email directly or view it online.", "Here is your receipt for your recent purchase.",
			"Amount paid: ${num}.00", "Your statement for this month is available in online banking.", "This is a reminder for {eevent}.",
			"Manage your notification settings in your account preferences.", "Questions? Visit our help center."}},
	{[]string{"Scheduled maintenance this weekend", "Password change required for the new VPN", "Phishing awareness reminder", "IT: laptop upgrade schedule"},
		[]string{"The IT service desk will perform maintenance on {eday} from 20:00 to 23:00.", "Email and the intranet may be unavailable during this window.",
			"As part of the VPN upgrade, everyone needs to set a new password on the intranet portal by {eday}.", "IT will never ask for your password by email.",
			"Please report suspicious messages with the Report button.", "Laptops in your department will be replaced on {eday}; please back up local files.",
			"Contact the service desk at extension {num} if you have questions.", "Thank you,\nIT Service Desk"}},
}

var enFill = map[string][]string{
	"ebrand": {"Microsoft 365", "PayPal", "Apple", "Amazon", "Netflix", "DHL", "FedEx", "Chase", "Wells Fargo", "DocuSign", "Dropbox", "Coinbase"},
	"edoc":   {"Invoice_2026", "Payment_Advice", "Contract_Final", "Scan_0042"},
	"ebank":  {"First National Bank", "Global Trust Bank", "Pacific Credit Union"},
	"ename":  {"Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Hiro", "Ines", "James"},
	"eday":   {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "March 12", "June 3", "October 20"},
	"erepo":  {"acme/website", "team/api", "city/portal"},
	"eevent": {"Quarterly review", "Team lunch", "Budget committee", "Dentist appointment"},
}

var enSpamURLs = []string{"http://office365-verify.example.top/login", "https://paypal-account.secure-check.xyz/signin", "http://bit.ly/3kX9aQz",
	"https://docs-share.example.icu/view?id={num}", "http://dhl-redelivery.example.shop/track", "https://claim-reward.example.win/",
	"http://crypto-moon.example.io/join", "https://meds-online.example.biz/order"}

var enHamURLs = []string{"https://github.com/acme/website/pull/{num}", "https://intranet.example.org/it/vpn", "https://www.example.com/orders/{num}"}
