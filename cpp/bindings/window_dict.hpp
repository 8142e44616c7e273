// Converts one finished window into the Python dict that cuagent.engine turns
// into a DeviceState. Shared by the engine and the aggregator harness.
#pragma once

#include <pybind11/pybind11.h>

#include "cuagent/aggregator.hpp"
#include "cuagent/topology.hpp"
#include "cuagent/window.hpp"

pybind11::dict window_to_dict(const cuagent::DeviceDescription& device,
                              const cuagent::AggregationPlan& plan,
                              const cuagent::WindowResult& window, std::int64_t realtime_offset_ns);
