// RUN: keir-opt %s --keir-lower-gpu | FileCheck %s

// The Gaussian kernel sum on the GPU: 8 output rows i per thread (register blocking: the rows' x_i and totals
// fit 4 registers each); the checks below follow the first row. x_i is loaded once, before the loop over
// tiles; each tile of the j-variables y and b is copied to workgroup memory by the whole block (consecutive
// threads, consecutive words) into rows of 16 bytes, (y_j, b_j) side by side, then every thread runs over the
// tile (an i32 counter), reading a row with one vector load. exp is the special-function unit's exp2 after an
// exact reduction; the weight's product is fused into the accumulating fma. The reduction's state is the CPU's
// accumulator on vector<1xf32>; a sum adds each tile's partial sum to the row's total. Grid y splits the columns
// (%jchunk each, for few rows): each split writes its partial sums, which the runtime adds.
// CHECK: module attributes {gpu.container_module}
// CHECK: gpu.module @keir_kernels
// CHECK-LABEL: gpu.func @gauss(
// CHECK-SAME: %[[X:[a-z0-9]+]]: memref<?xf32>, %[[Y:[a-z0-9]+]]: memref<?xf32>, %[[B:[a-z0-9]+]]: memref<?xf32>, %[[OUT:[a-z0-9]+]]: memref<?xf32>, %[[ROWS:[a-z0-9]+]]: index, %[[COLS:[a-z0-9]+]]: index, %[[TILE:[a-z0-9]+]]: index, %[[JCHUNK:[a-z0-9]+]]: index) kernel
// CHECK: gpu.thread_id x
// CHECK: gpu.block_dim x
// CHECK: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : vector<1xf32>
// CHECK-COUNT-8: arith.minui %{{.*}}, %{{.*}} : index
// CHECK: %[[SMEM:.*]] = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
// CHECK: %[[YS:.*]] = memref.view %[[SMEM]]{{.*}} to memref<?xf32, #gpu.address_space<workgroup>>
// CHECK: memref.load %[[X]]
// CHECK: %[[SPLIT:.*]] = gpu.block_id y
// CHECK: %[[LO:.*]] = arith.muli %[[SPLIT]], %[[JCHUNK]] : index
// CHECK: %[[END:.*]] = arith.addi %[[LO]], %[[JCHUNK]] : index
// CHECK: %[[HI:.*]] = arith.minui %[[END]], %[[COLS]] : index
// CHECK: scf.for %{{.*}} = %[[LO]] to %[[HI]] step %[[TILE]] iter_args(%[[TOTAL:[a-z0-9]+]] = %[[ZERO]], {{.*}}) -> (vector<1xf32>, {{.*}})
// CHECK: arith.minui %[[TILE]]
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %block_dim_x
// CHECK: memref.load %[[Y]]
// CHECK: arith.divui
// CHECK: arith.remui
// CHECK: memref.store %{{.*}}, %[[YS]]
// CHECK: memref.load %[[B]]
// CHECK: memref.store %{{.*}}, %[[YS]]
// CHECK: gpu.barrier
// CHECK: %[[PART:[0-9]+]]:8 = scf.for %{{.*}} iter_args(%[[ACC:[a-z0-9]+]] = %[[ZERO]], {{.*}}) -> (vector<1xf32>, {{.*}}) : i32
// CHECK-NOT: memref.load %[[X]]
// CHECK: %[[ROW:.*]] = vector.load %[[YS]][%{{.*}}] {alignment = 16 : i64} : memref<?xf32, #gpu.address_space<workgroup>>, vector<4xf32>
// CHECK-NOT: vector.load
// CHECK: vector.extract %[[ROW]][2]
// CHECK: arith.maximumf
// CHECK: arith.minimumf
// CHECK: %[[POWER:.*]] = math.exp2
// CHECK: %[[EXP:.*]] = math.fma %[[POWER]], %{{.*}}, %[[POWER]] : f32
// CHECK: %[[E:.*]] = vector.broadcast %[[EXP]] : f32 to vector<1xf32>
// CHECK: vector.extract %[[ROW]][3]
// CHECK: %[[W:.*]] = vector.broadcast
// CHECK: math.fma %[[E]], %[[W]], %[[ACC]] : vector<1xf32>
// CHECK: scf.yield
// CHECK: gpu.barrier
// CHECK: arith.addf %[[TOTAL]], %[[PART]]#0 : vector<1xf32>
// CHECK: scf.yield
// CHECK: %[[SUM:.*]] = vector.reduction <add>, %{{.*}} : vector<1xf32> into f32
// CHECK: scf.if
// CHECK: memref.store %[[SUM]], %[[OUT]]
// CHECK: gpu.return
// CHECK-NOT: func.call
func.func @gauss() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf32>
  %b = "keir.var"() {index = 2 : i64, category = "j"} : () -> vector<1xf32>
  %d = "keir.sqdist"(%x, %y) : (vector<3xf32>, vector<3xf32>) -> vector<1xf32>
  %n = "keir.neg"(%d) : (vector<1xf32>) -> vector<1xf32>
  %e = "keir.exp"(%n) : (vector<1xf32>) -> vector<1xf32>
  %f = "keir.mul"(%e, %b) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %r = "keir.reduce"(%f) {kind = "sum", axis = 1 : i64} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}

// A reduction over i (axis 0) is the same kernel with i and j swapped: the user's i-variable x is staged, the
// j-variable y is the thread's row. A parameter is loaded once per thread.
// CHECK-LABEL: gpu.func @over_i(
// CHECK-SAME: %[[X2:[a-z0-9]+]]: memref<?xf64>, %[[Y2:[a-z0-9]+]]: memref<?xf64>, %[[P2:[a-z0-9]+]]: memref<?xf64>
// CHECK: memref.view {{.*}} to memref<?xf64, #gpu.address_space<workgroup>>
// CHECK-DAG: memref.load %[[P2]]
// CHECK-DAG: memref.load %[[Y2]]
// CHECK: scf.for
// CHECK: memref.load %[[X2]]
// CHECK: gpu.barrier
// CHECK: math.sqrt %{{.*}} : f64
// CHECK: gpu.return
func.func @over_i() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<2xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<2xf64>
  %p = "keir.var"() {index = 2 : i64, category = "p"} : () -> vector<1xf64>
  %d = "keir.sqdist"(%x, %y) : (vector<2xf64>, vector<2xf64>) -> vector<1xf64>
  %s = "keir.sqrt"(%d) : (vector<1xf64>) -> vector<1xf64>
  %m = "keir.mul"(%s, %p) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%m) {kind = "sum", axis = 0 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// An arg-reduction carries (value, index j) through every tile (no per-tile restart) and writes int64 indices
// to %out_idx, -1 where no candidate was found.
// CHECK-LABEL: gpu.func @nearest(
// CHECK-SAME: %[[OUT_IDX:[a-z0-9_]+]]: memref<?xi64>, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index) kernel
// CHECK: scf.for %[[T0:[a-z0-9]+]] = {{.*}} -> (vector<1xf32>, vector<1xi64>{{.*}})
// CHECK: scf.for %[[JQ:[a-z0-9]+]] = {{.*}} -> (vector<1xf32>, vector<1xi64>{{.*}}) : i32
// CHECK: %[[JJ:.*]] = arith.index_cast %[[JQ]] : i32 to index
// CHECK: arith.addi %[[T0]], %[[JJ]] : index
// CHECK: arith.index_cast {{.*}} : index to i64
// CHECK: arith.cmpf olt
// CHECK: vector.reduction <minsi>
// CHECK: arith.constant 9223372036854775807 : i64
// CHECK: arith.constant -1 : i64
// CHECK: scf.if
// CHECK: memref.store %{{.*}}, %[[OUT_IDX]]
func.func @nearest() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf32>
  %d = "keir.sqdist"(%x, %y) : (vector<3xf32>, vector<3xf32>) -> vector<1xf32>
  %r = "keir.reduce"(%d) {kind = "argmin", axis = 1 : i64} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}
