@x86 @docker
Feature: Test1 - TFLM hello_world in an x86 container, without hardware
  As a CTO, I want every CI run to take a model through compile, build, deploy
  and infer on a device without any board, so that the loop is always runnable.

  Scenario: hello_world int8 runs in the x86 device container, bit-exact with TFLM
    Given the hello_world int8 model from the zoo
    When it is compiled for "x86-tflm"
    And it is built by the builder container
    And the OS image is booted in a device container
    Then the device banner names board "x86-tflm" and the model hash
    And for x = 0..6 the dequantized outputs are within 0.15 of sin(x)
    And the int8 outputs equal those of the in-process TFLM interpreter byte for byte

  Scenario: the builder image follows the partner contract with a bare model
    Given the hello_world int8 model from the zoo
    When the builder container is run on the bare model with no network
    Then it writes an OS image and a manifest for board "x86-tflm"
    And building the same model twice gives the same image bytes
