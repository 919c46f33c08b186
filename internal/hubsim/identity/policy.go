package identity

// Shared access policy names, as on a new IoT hub.
const (
	PolicyOwner             = "iothubowner"
	PolicyService           = "service"
	PolicyDevice            = "device"
	PolicyRegistryRead      = "registryRead"
	PolicyRegistryReadWrite = "registryReadWrite"
)

// Perm is a set of IoT Hub shared-access permissions.
type Perm uint8

// The permissions a shared access policy can grant.
const (
	PermRegistryRead Perm = 1 << iota
	PermRegistryWrite
	PermServiceConnect
	PermDeviceConnect
)

func (p Perm) String() string {
	var s string
	for _, n := range []struct {
		p    Perm
		name string
	}{{PermRegistryRead, "RegistryRead"}, {PermRegistryWrite, "RegistryWrite"}, {PermServiceConnect, "ServiceConnect"}, {PermDeviceConnect, "DeviceConnect"}} {
		if p&n.p != 0 {
			if s != "" {
				s += ", "
			}
			s += n.name
		}
	}
	return s
}

// Policies are the shared access policies of a new hub with their
// permissions, in the order the portal lists them.
var Policies = []struct {
	Name  string
	Perms Perm
}{
	{PolicyOwner, PermRegistryRead | PermRegistryWrite | PermServiceConnect | PermDeviceConnect},
	{PolicyService, PermServiceConnect},
	{PolicyDevice, PermDeviceConnect},
	{PolicyRegistryRead, PermRegistryRead},
	{PolicyRegistryReadWrite, PermRegistryRead | PermRegistryWrite},
}
