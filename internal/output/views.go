package output

// ProfileView is the public JSON shape of a saved profile (dmctl config
// get-profile and list): its connection string is redacted.
type ProfileView struct {
	Name             string `json:"name"`
	Current          bool   `json:"current"`
	Hub              string `json:"hub,omitempty"`
	Auth             string `json:"auth,omitempty"`
	CAFile           string `json:"caFile,omitempty"`
	Output           string `json:"output,omitempty"`
	ConnectionString string `json:"connectionString,omitempty"`
}
