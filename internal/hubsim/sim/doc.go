// Package sim describes a simulated hubsim fleet and holds its pure
// arithmetic; package registry turns a description into
// identities with state and imports sim, never the reverse.
//
// sim owns:
//
//   - the fleet description: FleetSpec and its Group, Connection, Flapping,
//     MethodSpec, Latency, FaultSpec, Auth and Duration; GenerateFleet (the
//     fleet of --devices N), LoadFleetFile and ParseFleet (JSON or YAML
//     fleet files), Validate, and Group.DeviceIDs (id pattern expansion);
//   - the rules a description obeys, which the registry applies to its API
//     writes as well: CheckID, CheckTwinProps, JSONSize and the twin limits;
//   - the global fault shares (FaultRates) and their resolution per group
//     and method (ResolveFaults, ResolvedFaults.Pick);
//   - the counter-based random draws (SplitMix64, IdentityHash, Draw,
//     Uniform, Normal, Exponential): a draw is a pure function of the seed,
//     an identity's ids, a stream and a counter, so a simulation is the same
//     for the same seed however calls to different devices interleave.
//
// Nothing here holds state or starts a timer: the per-identity counters,
// the streams, the life cycles and the runtime Fault values are the
// registry's. The fleet-file format is documented on LoadFleetFile and in
// fleetfile.md.
package sim
