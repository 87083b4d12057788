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

// Save writes c's source as NAME.yaml, atomically and durably: a
// temporary file, synced, renamed over NAME.yaml, then the directory
// synced, so that a crash leaves the old file or the new one.
func (s *Store) Save(c *Container) error {
	if err := CheckName(c.Name); err != nil {
		return fmt.Errorf("saving container: %w", err)
	}
	if err := s.write(c.Name, c.Source); err != nil {
		return fmt.Errorf("saving container %q as %s: %w", c.Name, s.path(c.Name), err)
	}
	return nil
}

func (s *Store) write(name string, src []byte) error {
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(src)
	err = errors.Join(err, tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return s.syncDir()
}

// syncDir makes a rename or a removal in the directory durable.
func (s *Store) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// Remove forgets the container called name, durably.
func (s *Store) Remove(name string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("removing container from the store: %w", err)
	}
	err := os.Remove(s.path(name))
	if err == nil {
		err = s.syncDir()
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing container %q from the store: %w", name, err)
	}
	return nil
}

// Snapshot returns a function that puts the stored file of the container
// called name back as it is now (its text, or no file): the undo of a
// Save whose change could not be applied.
func (s *Store) Snapshot(name string) (restore func() error, err error) {
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("reading the store: %w", err)
	}
	src, err := os.ReadFile(s.path(name))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return func() error { return s.Remove(name) }, nil
	case err != nil:
		return nil, fmt.Errorf("reading container %q from the store: %w", name, err)
	}
	return func() error {
		if err := s.write(name, src); err != nil {
			return fmt.Errorf("restoring container %q as %s: %w", name, s.path(name), err)
		}
		return nil
	}, nil
}

// Load returns every stored container.
func (s *Store) Load() ([]*Container, error) { return LoadDir(s.dir) }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+".yaml") }
