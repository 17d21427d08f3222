// Package repolint holds checks over the repository's tracked files (its tests): things a
// compiler does not see, such as absolute paths of one development machine.
package repolint
