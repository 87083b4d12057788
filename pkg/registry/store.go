package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Store keeps registrations made at run time (through the control API) in
// a directory, one file per container, so that a restart keeps them.
type Store struct {
	dir string
}

// OpenStore opens (creating with mode 0700) the store directory.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening registry store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Save writes c's source atomically as NAME.yaml.
func (s *Store) Save(c *Container) error {
	if err := CheckName(c.Name); err != nil {
		return fmt.Errorf("saving container: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("saving container %q: %w", c.Name, err)
	}
	_, err = tmp.Write(c.Source)
	err = errors.Join(err, tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(c.Name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving container %q: %w", c.Name, err)
	}
	return nil
}

// Remove forgets the container called name.
func (s *Store) Remove(name string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("removing container from the store: %w", err)
	}
	err := os.Remove(s.path(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing container %q from the store: %w", name, err)
	}
	return nil
}

// Load returns every stored container.
func (s *Store) Load() ([]*Container, error) { return LoadDir(s.dir) }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+".yaml") }
