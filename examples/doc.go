// Package examples holds small runnable programs showing integrators how to
// use single seccloud packages on their own, one folder per example.
package examples
