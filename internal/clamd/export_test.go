package clamd

// ParseReply exposes parseReply to the external tests.
var ParseReply = parseReply
