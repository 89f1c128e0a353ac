@lwm2m @docker @x86
Feature: x86 devices are managed over LwM2M: registration, capabilities, FOTA, SOTA
  As an on-site IT operator, I want devices to tell the service what they are and
  to take new firmware or just a new model over the air, so that I can update
  them without touching them. Real UDP on loopback, OSCORE on, the x86 device in
  its container; the service builds the firmware in its builder container.

  Background:
    Given the LwM2M service is running with OSCORE security
    And the service has built hello_world firmware "1.0.0" and "2.0.0" for "x86-tflm"
    And the service has built the hello_world_float model for "x86-tflm"

  Scenario: a device registers and appears with its capabilities
    Given device "x86-caps" has credentials from the service
    When device "x86-caps" boots firmware "1.0.0" in a container
    Then the service lists "x86-caps" online over OSCORE with objects 3, 5, 9 and 33100
    And its capabilities say board "x86-tflm", firmware "1.0.0", CPU "x86-64", 65536 KiB of RAM and the hello_world model
    And its storage figures are in kilobytes: 16384 KiB total

  Scenario: FOTA of a new firmware; the device reboots into it and infers correctly
    Given device "x86-fota" has credentials from the service
    And device "x86-fota" boots firmware "1.0.0" in a container
    When the service deploys firmware "2.0.0" to "x86-fota"
    Then the deployment succeeds with Update Result "firmware updated successfully"
    And "x86-fota" reports firmware "2.0.0" after rebooting once
    And inferences through LwM2M for x = 0..6 are bit-exact with TFLM and within 0.15 of sin(x)

  Scenario: FOTA of a corrupted image is refused and the old firmware keeps running
    Given device "x86-bad" has credentials from the service
    And device "x86-bad" boots firmware "1.0.0" in a container
    And a copy of firmware "2.0.0" whose stored bytes got corrupted
    When the service deploys the corrupted firmware to "x86-bad"
    Then the deployment fails with Update Result "integrity check failure"
    And "x86-bad" still runs firmware "1.0.0" without having rebooted
    And inferences through LwM2M for x = 0..6 are bit-exact with TFLM and within 0.15 of sin(x)

  Scenario: SOTA swaps the model on a running device without losing an inference request
    Given device "x86-sota" has credentials from the service
    And device "x86-sota" boots firmware "1.0.0" in a container
    And a client keeps sending inference requests to "x86-sota"
    When the service deploys the hello_world_float model to "x86-sota"
    Then the deployment succeeds with Update Result "software successfully installed"
    And "x86-sota" serves the hello_world_float model without having rebooted
    And every inference request was answered, by the old model and then by the new one

  Scenario: a device that stops updating its registration is shown offline
    Given device "x86-quiet" has credentials from the service
    And device "x86-quiet" boots firmware "1.0.0" in a container with a lifetime of 3 s
    When the device container is frozen for 6 s
    Then the service shows "x86-quiet" offline because its lifetime expired
    When the device container is thawed
    Then the service lists "x86-quiet" online again within 15 s

  Scenario: devices with wrong or no credentials can neither register nor fetch firmware
    Given device "x86-wrong" has credentials from the service, but the device's copy of the key is wrong
    When device "x86-wrong" boots firmware "1.0.0" in a container
    And device "x86-none" boots firmware "1.0.0" in a container without credentials
    Then neither "x86-wrong" nor "x86-none" is listed by the service after 5 s
    And the device logs say the server refused them
    And firmware "2.0.0" cannot be downloaded for "x86-none" without a grant
