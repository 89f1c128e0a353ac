@lwm2m @docker @x86 @reliability
Feature: A new firmware image must prove itself, or the device goes back to the one it had
  As an on-site IT operator, I want a device that gets a bad image to roll back by itself
  and tell me so, whatever is wrong with the image, so that no update bricks a device.
  A new image is on trial until it is back with the service and answers a test
  inference; the boot ROM of the x86 device (in its container) rolls back otherwise.

  Background:
    Given the LwM2M service is running with OSCORE security
    And the service has built hello_world firmware "1.0.0" and "2.0.0" for "x86-tflm"

  Scenario Outline: firmware "2.0.0" that <fault> is rolled back
    Given device "x86-<name>" has credentials from the service
    And device "x86-<name>" boots firmware "1.0.0" in a container with a trial of 8 s
    When the service deploys a signed copy of firmware "2.0.0" that <fault> to "x86-<name>"
    Then the deployment fails with Update Result "firmware update failed" saying why
    And "x86-<name>" runs firmware "1.0.0" again and answers inferences bit-exact with TFLM

    Examples:
      | name  | fault                               |
      | late  | crashes 5 s after it boots          |
      | hang  | hangs at boot                       |
      | quiet | boots without its management agent  |

  Scenario: an image not signed by the service is refused before it is written
    Given device "x86-unsigned" has credentials from the service
    And device "x86-unsigned" boots firmware "1.0.0" in a container with a trial of 8 s
    When the service sends firmware "2.0.0" without the service's signature to "x86-unsigned"
    Then the deployment fails with Update Result "integrity check failure"
    And "x86-unsigned" still runs firmware "1.0.0" without having rebooted
