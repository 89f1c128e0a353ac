@lwm2m
Feature: LwM2M devices the project did not write are managed too
  As an on-site IT operator, my fleet has LwM2M devices from other vendors: they speak the
  content formats they announce, take firmware the ways they say, and battery ones sleep
  between their messages. The service uses what each device has, with its default settings.
  Real UDP on loopback; the devices are stock LwM2M 1.1 clients beside the service.

  Background:
    Given the service runs its LwM2M server with default settings, battery devices staying awake 1 s

  Scenario Outline: a stock device that speaks only SenML JSON is read, observed and updated, <how>
    Given a stock LwM2M 1.1 device "<ep>" that speaks only SenML JSON and takes firmware <how>
    Then the service shows that "<ep>" is made by "Vendor Oy" and runs firmware "1.0.0"
    And the service reports each inference "<ep>" runs, as it happens
    When the service deploys new firmware to "<ep>"
    Then the deployment succeeds, the package having gone by <delivery>
    And the service shows that "<ep>" is made by "Vendor Oy" and runs firmware "2.0.0"

    Examples:
      | ep       | how                  | delivery       |
      | vendor-a | pushed by the server | push           |
      | vendor-b | pulled over CoAP     | pull over CoAP |

  Scenario: a device that takes firmware in no way the service offers is told so at once
    Given a stock LwM2M 1.1 device "vendor-c" that speaks only SenML JSON and takes firmware pulled over CoAPS
    When the service deploys new firmware to "vendor-c"
    Then the deployment fails within seconds, saying "the device takes firmware by pull over CoAPS; this server offers pull over CoAP or HTTP, or push"

  Scenario: a battery device that sleeps gets requests when it wakes, and reports by itself
    Given a stock LwM2M 1.1 device "battery-1" that sleeps between its messages
    When someone asks "battery-1" for an inference while it sleeps
    Then the service answers that the inference is queued
    And the job gives the inference's result once "battery-1" wakes
    When "battery-1" runs an inference on its own and sends it to the service
    Then the service reports that inference, as it happens
