// RUN: keir-opt %s --keir-lower-cpu | FileCheck %s

// The Gaussian kernel sum: i-only work (loading x_i) is hoisted out of the j loop, which runs on
// vector<16xf32> with a masked tail, and the exponential is a polynomial (no call to expf), whose 2**k is
// an integer addition to the exponent field when every lane's result is normal.
// CHECK-LABEL: func.func @gauss(
// CHECK-SAME: %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32>, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index)
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step
// CHECK: memref.load %{{.*}}[%{{.*}}] : memref<?xf32>
// CHECK: vector.broadcast %{{.*}} : f32 to vector<16xf32>
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %{{.*}}) -> (vector<16xf32>)
// CHECK-NOT: memref.load
// CHECK: vector.load %{{.*}}[%{{.*}}] : memref<?xf32>, vector<16xf32>
// CHECK: %[[NORMAL:.*]] = vector.reduction <and>, %{{.*}} : vector<16xi1> into i1
// CHECK: scf.if %[[NORMAL]] -> (vector<16xf32>)
// CHECK: math.fma
// CHECK: arith.shli %{{.*}} : vector<16xi32>
// CHECK: } else {
// CHECK: arith.minimumf
// CHECK: scf.yield
// CHECK: scf.if
// CHECK: vector.create_mask
// CHECK: vector.maskedload
// CHECK: arith.select
// CHECK: vector.reduction <add>
// CHECK: memref.store
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

// f64 runs on vector<8xf64>; a reduction over i (axis 0) is the same loop with i and j swapped.
// CHECK-LABEL: func.func @over_i(
// CHECK: vector.load %{{.*}}[%{{.*}}] : memref<?xf64>, vector<8xf64>
// CHECK: vector.reduction <add>, %{{.*}} : vector<8xf64> into f64
func.func @over_i() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %s = "keir.mul"(%x, %y) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%s) {kind = "sum", axis = 0 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// A wide sqdist (D >= 8) is a matrix product's micro-kernel: inside the j loop, a loop over the components,
// four at a time, carries one accumulator per row of the block (as many as the host's registers hold: 16 with
// AVX-512, 4 with AVX2); each step loads y_j[d] once and x_i[d]
// once per row. Then |x|^2 + |y|^2 - 2 x.y, |y|^2 read after y's 16 components, clamped at 0. (direct_sum:
// with the default block_sum, the same j loop runs inside a loop over blocks of j.)
// CHECK-LABEL: func.func @wide(
// CHECK: scf.for %[[J:.*]] = %{{.*}} iter_args
// CHECK: arith.muli %[[J]], %[[STRIDE:.*]] : index
// CHECK: %{{.*}}:{{[0-9]+}} = scf.for %[[D:.*]] = %{{.*}} to %[[SIXTEEN:.*]] step %{{.*}} iter_args({{.*}}) -> ({{(vector<16xf32>, )+}}vector<16xf32>)
// CHECK: vector.load %{{.*}}[%{{.*}}] : memref<?xf32>, vector<16xf32>
// CHECK: memref.load %{{.*}}[%{{.*}}] : memref<?xf32>
// CHECK: vector.broadcast %{{.*}} : f32 to vector<16xf32>
// CHECK: math.fma
// CHECK: scf.yield
// CHECK: math.fma
// CHECK: arith.maximumf
func.func @wide() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<16xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<16xf32>
  %d = "keir.sqdist"(%x, %y) : (vector<16xf32>, vector<16xf32>) -> vector<1xf32>
  %r = "keir.reduce"(%d) {kind = "sum", axis = 1 : i64, sum_scheme = "direct_sum"} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}
