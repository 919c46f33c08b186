// Package registry is hubsim's device registry: device and module identities
// with their keys and authentication, twins (iothub-contract.md §4.2), the
// simulated devices a fleet description creates (Registry.Apply), the
// device-management life cycles reported in properties.reported.iothubDM
// (§4.3), method invocation with fault injection (Registry.Fault, the Fault
// values), Delivery, stats, and the device side that real devices (MQTT) or
// tests attach to. Everything that holds identity state is here.
//
// What a simulated fleet is, without any state, is package sim's: the
// fleet-file types and their parsing and validation (sim.FleetSpec,
// sim.LoadFleetFile), the global fault shares (sim.FaultRates) and their
// resolution, the id and twin rules, and the counter-based random draws.
// devices imports sim, never the reverse.
//
// Design notes:
//
//   - Cheap idle devices. A simulated device is a struct of a few hundred
//     bytes: its tags and properties point at its group's read-only templates
//     until first written (copy-on-write), its iothubDM life-cycle state is a
//     compact struct rendered on read, and it owns no goroutine or timer.
//     Delays (latency, downtime, firmware steps) are time.AfterFunc timers
//     or timers of the invoking goroutine. BenchmarkRegistry100k reports the
//     bytes per device.
//   - Lock-light invoke path. Device lookups go through 64 read-locked
//     shards; each identity has its own mutex; counters are atomic; random
//     draws are counter-based hashes (sim.Uniform and the like; no shared
//     RNG).
//   - Reproducible simulation. Every draw is a function of (seed, deviceId,
//     moduleId, stream, per-identity counter): the offline set, latency,
//     firmware failures, flapping periods and injected faults are the same
//     for the same seed and the same sequence of calls to each device,
//     however calls to different devices interleave.
//   - Time. Options.Now stamps twins and deliveries; delays always run on
//     the real clock.
//
// The fleet-file format is documented on sim.LoadFleetFile and in
// ../sim/fleetfile.md.
package registry
