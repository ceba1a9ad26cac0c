package api

import "github.com/vmflow/vmflow/enrich"

// The VM and host resource routes of the OpenAPI document (resources.go).
func addResourceOpenAPI(paths, schemas obj) {
	cpu := object("Processor use over the interval. Rates are absent on the first sample, across a restart or migration, or when a counter went backwards.", obj{
		"vcpus":           integer("virtual CPUs"),
		"percent":         num("CPU use in % of all the VM's vCPUs (100 = every vCPU busy)"),
		"percent_of_core": num("CPU use in % of one host core (up to 100 x vcpus)"),
	})
	mem := object("Memory: gauges in bytes (the latest sample), swap in bytes/s and page faults per second over the interval.", obj{
		"max_bytes":            integer("configured maximum"),
		"balloon_bytes":        integer("current balloon: what the guest may use"),
		"used_bytes":           integer("in use (available - unused from the balloon driver, or the host agent's figure)"),
		"available_bytes":      integer("memory the guest sees"),
		"unused_bytes":         integer("memory the guest leaves free"),
		"usable_bytes":         integer("usable without swapping"),
		"rss_bytes":            integer("resident set of the VM's process on the host"),
		"used_percent":         num("used of available (or of max), %"),
		"swap_in_bytes_per_s":  num("swap in, bytes/s"),
		"swap_out_bytes_per_s": num("swap out, bytes/s"),
		"major_faults_per_s":   num("major page faults per second"),
		"minor_faults_per_s":   num("minor page faults per second"),
		"swap_in_bytes_total":  integer("swap-in counter"),
		"swap_out_bytes_total": integer("swap-out counter"),
	})
	disk := object("One virtual disk.", obj{
		"name":              str("target device (vda); * for a host agent's VM total"),
		"read_iops":         num("read requests per second"),
		"write_iops":        num("write requests per second"),
		"read_bytes_per_s":  num("bytes read per second"),
		"write_bytes_per_s": num("bytes written per second"),
		"errors":            integer("new errors in the interval"),
		"read_reqs_total":   integer("read request counter"),
		"read_bytes_total":  integer("read byte counter"),
		"write_reqs_total":  integer("write request counter"),
		"write_bytes_total": integer("write byte counter"),
		"errors_total":      integer("error counter"),
		"capacity_bytes":    integer("disk size"),
	}, "name")
	nic := object("One vNIC as the hypervisor counts it (rx: what the guest received).", obj{
		"name":             str("host-side device (vnet0, tap...)"),
		"mac":              str("MAC address"),
		"rx_bits_per_s":    num("received, bit/s"),
		"tx_bits_per_s":    num("sent, bit/s"),
		"rx_packets_per_s": num("received packets per second"),
		"tx_packets_per_s": num("sent packets per second"),
		"rx_errors":        integer("new receive errors in the interval"),
		"tx_errors":        integer("new transmit errors in the interval"),
		"rx_drops":         integer("new receive drops in the interval"),
		"tx_drops":         integer("new transmit drops in the interval"),
		"rx_bytes_total":   integer("received byte counter"),
		"tx_bytes_total":   integer("sent byte counter"),
	}, "name")
	resProps := func(extra obj) obj {
		p := obj{
			"uuid":             str("VM UUID"),
			"name":             str("VM name as the source reports it"),
			"host":             str("hypervisor"),
			"source":           obj{"type": "string", "enum": []string{"libvirt", "hsflowd"}, "description": "producer of these figures: one per VM, libvirt first while it is fresh, never a sum"},
			"origin":           str("producer instance: libvirt:URI or hsflowd:agent"),
			"state":            str("run state (running, paused, shutoff, ...)"),
			"time":             dateTime("when the counters were read"),
			"interval_seconds": num("time since the previous sample the rates are over (0: first sample)"),
			"reset":            boolean("the counters restarted in the interval (restart, migration): no rates"),
			"stale":            boolean("no source reported the VM for 3 polls: these are its last figures"),
			"cpu":              ref("VMResourcesCPU"),
			"memory":           ref("VMResourcesMemory"),
			"disks":            arrayOf(ref("VMResourcesDisk"), "per disk"),
			"nics":             arrayOf(ref("VMResourcesNIC"), "per vNIC"),
		}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	schemas["VMResourcesCPU"] = cpu
	schemas["VMResourcesMemory"] = mem
	schemas["VMResourcesDisk"] = disk
	schemas["VMResourcesNIC"] = nic
	schemas["VMResources"] = object("One VM's resource figures at one sample.", resProps(nil),
		"source", "time", "interval_seconds", "stale", "cpu", "memory", "disks", "nics")
	schemas["VMResourcesResponse"] = object("A VM's resources now.", resProps(obj{
		"vm":          str("the VM's name"),
		"age_seconds": num("age of the figures (now - time)"),
	}), "vm", "age_seconds", "source", "time", "interval_seconds", "stale", "cpu", "memory", "disks", "nics")
	pointProps := obj{
		"time":   dateTime("when the counters were read"),
		"source": obj{"type": "string", "enum": []string{"libvirt", "hsflowd"}, "description": "producer of this point"},
		"reset":  boolean("counters restarted in the interval: no rates"),
	}
	for _, f := range enrich.ResourceFieldNames {
		pointProps[f] = num("sum over disks / vNICs where it applies; absent when unknown")
	}
	schemas["ResourcePoint"] = object("One point of a VM's resource series (float32 precision).", pointProps, "time", "source")
	schemas["VMResourceSeriesResponse"] = object("", obj{
		"vm":     str("the VM's name"),
		"from":   dateTime("range start"),
		"to":     dateTime("range end"),
		"points": arrayOf(ref("ResourcePoint"), "oldest first, one per sample of the chosen source (kept in memory: the last 180)"),
	}, "vm", "from", "to", "points")
	hv := object("The hypervisor's own figures from a host agent (hsflowd host_cpu, host_memory, virt_node).", obj{
		"source":             str("hsflowd"),
		"time":               dateTime("when they were read"),
		"cpus":               integer("host CPUs"),
		"cpu_percent":        num("host CPU busy, %"),
		"memory_total_bytes": integer("host memory"),
		"memory_free_bytes":  integer("free host memory"),
		"domains":            integer("domains the agent reports"),
	}, "source", "time")
	schemas["HostResources"] = object("One hypervisor: sums over its VMs' fresh figures, and its own when a host agent sends them.", obj{
		"host":                   str("hypervisor"),
		"time":                   dateTime("latest VM sample"),
		"vms":                    integer("VMs summed"),
		"vcpus":                  integer("their vCPUs"),
		"cpu_cores_used":         num("host cores their CPU use amounts to"),
		"memory_balloon_bytes":   integer("their balloons"),
		"memory_used_bytes":      integer("their used memory"),
		"memory_rss_bytes":       integer("their resident sets"),
		"disk_read_bytes_per_s":  num("disk reads, bytes/s"),
		"disk_write_bytes_per_s": num("disk writes, bytes/s"),
		"disk_iops":              num("disk requests per second"),
		"net_rx_bits_per_s":      num("vNIC receive, bit/s"),
		"net_tx_bits_per_s":      num("vNIC transmit, bit/s"),
		"hypervisor":             ref("HypervisorResources"),
	}, "host", "time", "vms", "vcpus", "cpu_cores_used", "memory_balloon_bytes", "memory_used_bytes", "memory_rss_bytes",
		"disk_read_bytes_per_s", "disk_write_bytes_per_s", "disk_iops", "net_rx_bits_per_s", "net_tx_bits_per_s")
	schemas["HypervisorResources"] = hv
	schemas["HostsResponse"] = object("", obj{"hosts": arrayOf(ref("HostResources"), "by host name")}, "hosts")
	if vs, ok := schemas["VMSeriesResponse"].(obj); ok {
		vs["properties"].(obj)["resources"] = arrayOf(ref("ResourcePoint"), "the VM's resource points in the range (absent without figures)")
	}

	paths["/api/v1/vms/{name}/resources"] = obj{"get": obj{
		"operationId": "vmResources",
		"summary":     "A VM's CPU, memory, disk and vNIC figures now, with their source and age",
		"description": "From the libvirt stats poller (inventory.libvirt.stats_interval) or hsflowd's host structures; one source per VM (libvirt while fresh, else hsflowd), never a sum.",
		"parameters":  []any{pref("name")},
		"responses": obj{
			"200": jsonResp("resources", "VMResourcesResponse"),
			"400": errResp("a query parameter was given; this route takes none"),
			"404": errResp("no figures for this VM"),
		},
	}}
	paths["/api/v1/vms/{name}/resources/series"] = obj{"get": obj{
		"operationId": "vmResourceSeries",
		"summary":     "A VM's resource points over a time range (in memory)",
		"parameters":  []any{pref("name"), pref("since"), pref("from"), pref("to")},
		"responses": obj{
			"200": jsonResp("points", "VMResourceSeriesResponse"),
			"400": errResp("bad range"),
			"404": errResp("no figures for this VM"),
		},
	}}
	paths["/api/v1/hosts"] = obj{"get": obj{
		"operationId": "listHosts",
		"summary":     "Per-hypervisor resource totals: sums of its VMs, and its own CPU and memory when hsflowd sends them",
		"responses": obj{
			"200": jsonResp("hosts", "HostsResponse"),
			"400": errResp("a query parameter was given; this route takes none"),
		},
	}}
}
