@operator @lwm2m @docker @qemu @slow
Feature: The IT operator registers devices before they come up and updates them in waves
  As an on-site IT operator, I want to register the devices I am about to install, see them
  come up (one behind a bridge with several boards), and send a new model in stages with a
  canary first, so that a bad update stops early and never reaches the whole fleet; and I
  want a build a device cannot run refused before anything is sent. Real UDP with OSCORE,
  the x86 device in its container, two emulated boards under QEMU behind one bridge, builds
  from the builder containers.

  Background:
    Given the operator's service is running with device credentials
    And it has built hello_world "1.0.0" and a retrained model "1.1.0" for "x86-tflm" and "lm3s6965evb"

  Scenario: three devices registered in advance come up and a new model reaches them in two waves
    Given I register "cam-1", an "x86-tflm" in "hall 1" tagged "line-a" and "camera"
    And I register "mcu-1" and "mcu-2", "lm3s6965evb" boards in "rack 3" tagged "line-a" and "sensor"
    Then the three are listed as expected and offline, each with the credentials it got
    When "cam-1" boots firmware "1.0.0" in a container
    And bridge "bridge-1" brings up "mcu-1" and "mcu-2" on emulated boards with firmware "1.0.0"
    Then the devices tagged "line-a" are online and report their board and firmware "1.0.0"
    And bridge "bridge-1" lists "mcu-1" and "mcu-2" as running
    When I roll out the retrained model to the devices tagged "line-a" in two waves, one device first
    Then "cam-1" is updated in the first wave and "mcu-1" and "mcu-2" in the second, as the live events show
    And every device tagged "line-a" runs the retrained model, and the registry says so
    And the rollout's job succeeded

  Scenario: a rollout whose canary fails pauses and the other devices keep their version
    Given "cam-2" and "cam-3" are registered tagged "line-b" and run firmware "1.0.0" in containers
    And the stored image of the "x86-tflm" firmware "2.0.0" got damaged
    When I roll out firmware "2.0.0" to the devices tagged "line-b", one device first
    Then the rollout pauses after the canary "cam-2" failed its integrity check
    And "cam-3" was never sent the update, and both still run firmware "1.0.0"

  Scenario: a build for another board is refused before anything is sent
    Given "cam-4" is registered tagged "line-c" and runs firmware "1.0.0" in a container
    When I deploy the "lm3s6965evb" firmware "1.0.0" to "cam-4"
    Then the service refuses it, naming the build's board "lm3s6965evb" and the device's board "x86-tflm"
    When I roll out the "lm3s6965evb" firmware "1.0.0" to the devices tagged "line-c"
    Then the service refuses it, naming "cam-4" and its board "x86-tflm"
    And no job was started for either

  Scenario: a partner's toolchain registered at run time builds a firmware
    Given a partner's builder image for "x86-tflm" in the local Docker engine
    When I register it as toolchain "acme-x86" for "x86-tflm"
    Then the service ran its self-test and lists "acme-x86" for "x86-tflm"
    When I build hello_world for "x86-tflm" with toolchain "acme-x86"
    Then the build succeeds with the partner's mark on its firmware, which says toolchain "acme-x86" built it
    And that firmware boots in a container and answers an inference
    When I register the same image as toolchain "acme-m3" for "lm3s6965evb"
    Then the service refuses it, naming the boards its self-test reported
