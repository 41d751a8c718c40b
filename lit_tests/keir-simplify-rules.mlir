// keir-simplify's named rules (keir-opt --list-rules), each on its own: with every rule (ALL), and with one rule
// left out by keir-simplify{disable=name} (that rule's prefix), which must leave exactly its rewrite undone.
// RUN: keir-opt %s --keir-simplify | FileCheck %s --check-prefix=ALL
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{disable=sum-of-products})' | FileCheck %s --check-prefix=SUM
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{disable=dot-products})' | FileCheck %s --check-prefix=DOT
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{disable=squared-norms})' | FileCheck %s --check-prefix=NORM
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{disable=squared-distances})' | FileCheck %s --check-prefix=DIST
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{disable=components})' | FileCheck %s --check-prefix=ELEM
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{disable=split-concat})' | FileCheck %s --check-prefix=SPLIT
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{disable=normal-form})' | FileCheck %s --check-prefix=NORMAL
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{disable=fold})' | FileCheck %s --check-prefix=FOLD
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{disable=split-concat,components})' | FileCheck %s --check-prefixes=SPLIT,ELEM

// sum-of-products: sum(a * b) => dot(a, b)
// ALL-LABEL: @sum_of_products
// ALL: "keir.dot"
// SUM-LABEL: @sum_of_products
// SUM: "keir.mul"
// SUM-NEXT: "keir.sum"
// dot-products: dot(a, a) => sqnorm2(a)
// ALL-LABEL: @dot_products
// ALL: "keir.sqnorm2"
// DOT-LABEL: @dot_products
// DOT: "keir.dot"(%0, %0)
// squared-norms: sqnorm2(a - b) => sqdist(a, b)
// ALL-LABEL: @squared_norms
// ALL: "keir.sqdist"
// NORM-LABEL: @squared_norms
// NORM: "keir.sub"
// NORM-NEXT: "keir.sqnorm2"
// squared-distances: sqdist(a, 0) => square(a) for a scalar a
// ALL-LABEL: @squared_distances
// ALL: "keir.square"
// DIST-LABEL: @squared_distances
// DIST: "keir.sqdist"
// components: elem(exp(a), 1) => exp(elem(a, 1))
// ALL-LABEL: @components
// ALL: "keir.elem"
// ALL-NEXT: "keir.exp"
// ELEM-LABEL: @components
// ELEM: "keir.exp"
// ELEM-NEXT: "keir.elem"
// split-concat: mul(concat(a, 0), b) => concat(mul(a, b[0]), 0)
// ALL-LABEL: @split_concat
// ALL: "keir.mul"({{.*}}) : (vector<1xf64>, vector<1xf64>)
// ALL-NEXT: "keir.concat"
// SPLIT-LABEL: @split_concat
// SPLIT: "keir.concat"
// SPLIT-NEXT: "keir.mul"({{.*}}) : (vector<2xf64>, vector<2xf64>)
// normal-form: x / 3 * 3 => x
// ALL-LABEL: @normal_form
// ALL-NOT: "keir.div"
// ALL: "keir.reduce"(%0)
// NORMAL-LABEL: @normal_form
// NORMAL: "keir.div"
// NORMAL-NEXT: "keir.mul"
// fold: exp(0) => 1
// ALL-LABEL: @fold
// ALL-NOT: "keir.exp"
// ALL: "keir.atan2"
// FOLD-LABEL: @fold
// FOLD: "keir.exp"

func.func @sum_of_products() -> vector<1xf64> {
  %a = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %b = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf64>
  %m = "keir.mul"(%a, %b) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %s = "keir.sum"(%m) : (vector<3xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%s) {kind = "sum", axis = 1 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
func.func @dot_products() -> vector<1xf64> {
  %a = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<3xf64>
  %d = "keir.dot"(%a, %a) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%d) {kind = "sum", axis = 1 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
func.func @squared_norms() -> vector<1xf64> {
  %a = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %b = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf64>
  %m = "keir.sub"(%a, %b) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %s = "keir.sqnorm2"(%m) : (vector<3xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%s) {kind = "sum", axis = 1 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
func.func @squared_distances() -> vector<1xf64> {
  %a = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<1xf64>
  %z = "keir.constant"() {value = 0.0 : f64} : () -> vector<1xf64>
  %d = "keir.sqdist"(%a, %z) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%d) {kind = "sum", axis = 1 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
func.func @components() -> vector<1xf64> {
  %a = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<3xf64>
  %e = "keir.exp"(%a) : (vector<3xf64>) -> vector<3xf64>
  %k = "keir.elem"(%e) {index = 1 : i64} : (vector<3xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%k) {kind = "sum", axis = 1 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
func.func @split_concat() -> vector<2xf64> {
  %a = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<1xf64>
  %b = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<2xf64>
  %z = "keir.constant"() {value = 0.0 : f64} : () -> vector<1xf64>
  %c = "keir.concat"(%a, %z) : (vector<1xf64>, vector<1xf64>) -> vector<2xf64>
  %m = "keir.mul"(%c, %b) : (vector<2xf64>, vector<2xf64>) -> vector<2xf64>
  %r = "keir.reduce"(%m) {kind = "sum", axis = 1 : i64} : (vector<2xf64>) -> vector<2xf64>
  return %r : vector<2xf64>
}
func.func @normal_form() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<1xf64>
  %c3 = "keir.constant"() {value = 3.0 : f64} : () -> vector<1xf64>
  %a = "keir.div"(%x, %c3) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %b = "keir.mul"(%a, %c3) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%b) {kind = "sum", axis = 1 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
func.func @fold() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<1xf64>
  %z = "keir.constant"() {value = 0.0 : f64} : () -> vector<1xf64>
  %e = "keir.exp"(%z) : (vector<1xf64>) -> vector<1xf64>
  %s = "keir.sin"(%x) : (vector<1xf64>) -> vector<1xf64>
  %m = "keir.atan2"(%s, %e) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.reduce"(%m) {kind = "sum", axis = 1 : i64} : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
