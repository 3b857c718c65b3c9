// Every optimizer's math (one header per optimizer, fusedopt/optimizers.h declares them): what
// the engines include.
#pragma once

#include "fusedopt/math/adam.h"
#include "fusedopt/math/lamb.h"
#include "fusedopt/math/lars.h"
#include "fusedopt/math/lion.h"
#include "fusedopt/math/sgd.h"
