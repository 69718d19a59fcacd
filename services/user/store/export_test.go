package store

// The migration's steps, for a test to change the users between them.
var (
	StaleEmails   = (*Store).staleEmails
	RewriteEmails = (*Store).rewriteEmails
)
