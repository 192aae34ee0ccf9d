package herokufake

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// AddonSpec describes an add-on instance to create with AddAddon, as Heroku
// would have provisioned it.
type AddonSpec struct {
	ID            string            `json:"id"`             // the add-on UUID
	Name          string            `json:"name"`           // global name; default "addon-" + the first 8 characters of ID
	App           string            `json:"app"`            // the app that owns the add-on
	AttachedApps  []string          `json:"attached_apps"`  // other apps it is attached to
	PrivateSpace  bool              `json:"private_space"`  // its apps restart with the Private Space delay
	ConfigVars    []string          `json:"config_vars"`    // manifest-declared names, like MYADDON_URL
	InitialConfig map[string]string `json:"initial_config"` // values set at provisioning
	HerokuID      string            `json:"heroku_id"`      // V1 id like app123@heroku.com; empty for V3
}

// addon is one add-on instance. config is never changed in place, so
// releases can share it.
type addon struct {
	spec          AddonSpec
	name          string
	deprovisioned bool
	config        map[string]string
	writes        int // successful config writes
	changes       int // writes that altered at least one value
}

// apps returns the names of the owning app and every attached app.
func (a *addon) apps() []string {
	names := []string{a.spec.App}
	for _, n := range a.spec.AttachedApps {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// undeclared returns a name in config the manifest does not declare, or "".
func (a *addon) undeclared(config map[string]string) string {
	for _, name := range slices.Sorted(maps.Keys(config)) {
		if !slices.Contains(a.spec.ConfigVars, name) {
			return name
		}
	}
	return ""
}

// AddAddon creates a provisioned add-on and the apps it is attached to, with
// an immediately running release on apps that did not exist yet.
func (f *Fake) AddAddon(spec AddonSpec) error {
	if err := validate(spec); err != nil {
		return err
	}
	spec.AttachedApps = slices.Clone(spec.AttachedApps)
	spec.ConfigVars = slices.Clone(spec.ConfigVars)
	a := &addon{spec: spec, name: spec.Name, config: maps.Clone(spec.InitialConfig)}
	if a.name == "" {
		a.name = "addon-" + spec.ID[:min(8, len(spec.ID))]
	}
	if a.config == nil {
		a.config = map[string]string{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.unique(a); err != nil {
		return err
	}
	f.addons[spec.ID], f.names[a.name] = a, spec.ID
	if spec.HerokuID != "" {
		f.herokuIDs[spec.HerokuID] = spec.ID
	}
	f.attach(a)
	return nil
}

func validate(spec AddonSpec) error {
	switch {
	case spec.ID == "":
		return errors.New("herokufake: add-on needs an ID")
	case spec.App == "":
		return errors.New("herokufake: add-on needs an app")
	case len(spec.ConfigVars) == 0:
		return errors.New("herokufake: add-on needs declared config vars")
	}
	a := addon{spec: spec}
	if name := a.undeclared(spec.InitialConfig); name != "" {
		return fmt.Errorf("herokufake: initial config var %s is not declared", name)
	}
	return nil
}

// unique checks a's ID, name and heroku_id are free. The caller holds f.mu.
func (f *Fake) unique(a *addon) error {
	_, idTaken := f.addons[a.spec.ID]
	_, nameTaken := f.names[a.name]
	_, herokuIDTaken := f.herokuIDs[a.spec.HerokuID]
	if idTaken || nameTaken || (a.spec.HerokuID != "" && herokuIDTaken) {
		return fmt.Errorf("herokufake: add-on %s already exists", a.spec.ID)
	}
	return nil
}

// Deprovision removes the add-on: its config leaves its apps in one release
// each, and its API answers 404 from then on. Unknown IDs are ignored.
func (f *Fake) Deprovision(addonID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.addons[addonID]
	if !ok || a.deprovisioned {
		return
	}
	a.deprovisioned = true
	f.detach(a)
}

// Config returns a copy of the add-on's current config, or nil when it is
// unknown or deprovisioned.
func (f *Fake) Config(addonID string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.addons[addonID]
	if !ok || a.deprovisioned {
		return nil
	}
	return maps.Clone(a.config)
}

// ConfigWrites returns how many config writes (V3 PATCH or V1 PUT) succeeded
// for the add-on, including ones that changed nothing.
func (f *Fake) ConfigWrites(addonID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.addons[addonID]; ok {
		return a.writes
	}
	return 0
}

// ConfigChanges returns how many successful config writes altered at least
// one value of the add-on. Only those make releases.
func (f *Fake) ConfigChanges(addonID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.addons[addonID]; ok {
		return a.changes
	}
	return 0
}

// errUndeclared is returned by setConfig for a name the manifest lacks.
type errUndeclared struct{ name string }

func (e errUndeclared) Error() string {
	return "Config var " + e.name + " is not declared in the add-on manifest."
}

var errGone = errors.New("add-on is deprovisioned")

// setConfig writes updates to the add-on and, if a value changed, releases
// its apps. It returns the resulting config.
func (f *Fake) setConfig(addonID string, updates map[string]string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.addons[addonID]
	if !ok || a.deprovisioned {
		return nil, errGone
	}
	if name := a.undeclared(updates); name != "" {
		return nil, errUndeclared{name}
	}
	a.writes++
	changed := changedNames(a.config, updates)
	if len(changed) > 0 {
		a.changes++
		a.config = merge(a.config, updates)
		f.release(a, changed)
	}
	return a.config, nil
}

// changedNames returns the names whose value updates alters, sorted.
func changedNames(config, updates map[string]string) []string {
	var names []string
	for name, v := range updates {
		if old, ok := config[name]; !ok || old != v {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func merge(config, updates map[string]string) map[string]string {
	out := maps.Clone(config)
	maps.Copy(out, updates)
	return out
}
