// Package packaging holds the files that install the seccloud appliance:
// a hardened systemd unit (packaging/systemd) and a container image
// (packaging/docker). It has no code; its tests check the hardening
// properties of those files so that an edit that weakens them fails CI.
package packaging
