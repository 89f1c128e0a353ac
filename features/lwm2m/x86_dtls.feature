@lwm2m @docker @x86
Feature: x86 devices secured with DTLS and a pre-shared key
  As an on-site IT operator whose LwM2M fleet is secured the way LwM2M makes mandatory
  (DTLS 1.2 with a pre-shared key per device), I want our devices to join that way too.
  Real UDP on loopback, the service's CoAPS port, the x86 device in its container.

  Background:
    Given the LwM2M service is running with DTLS-PSK security
    And the service has built hello_world firmware "1.0.0" and "2.0.0" for "x86-tflm"

  Scenario: a device with its pre-shared key registers over DTLS, is managed and takes new firmware
    Given device "x86-psk" has credentials from the service
    When device "x86-psk" boots firmware "1.0.0" in a container
    Then the service lists "x86-psk" online over DTLS with objects 3, 5, 9 and 33100
    And its capabilities say board "x86-tflm", firmware "1.0.0", CPU "x86-64", 65536 KiB of RAM and the hello_world model
    When the service deploys firmware "2.0.0" to "x86-psk"
    Then the deployment succeeds with Update Result "firmware updated successfully"
    And "x86-psk" reports firmware "2.0.0" after rebooting once
    And inferences through LwM2M for x = 0..6 are bit-exact with TFLM and within 0.15 of sin(x)

  Scenario: a device whose copy of the key is wrong cannot register
    Given device "x86-psk-bad" has credentials from the service, but the device's copy of the key is wrong
    When device "x86-psk-bad" boots firmware "1.0.0" in a container
    Then "x86-psk-bad" is not listed by the service after 5 s
